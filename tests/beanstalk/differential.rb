# Differential test of queuehub's beanstalk door against Debian's beanstalkd, with beaneater,
# the Ruby client (Debian's ruby-beaneater). Runs the same sessions against a fresh beanstalkd
# and a fresh queuehub and compares every result, step by step; job ids are compared by the
# order they first appeared in. Exits 1 if any step differs, printing both transcripts.
#
#   ruby tests/beanstalk/differential.rb --queuehub target/debug/queuehub [--beanstalkd PATH]
#   SHOW=1 ruby tests/beanstalk/differential.rb ...   # print every transcript
#
# Needs `apt-get install ruby ruby-beaneater beanstalkd` (.ci/run installs them).

require "beaneater"
require "optparse"
require "socket"
require "tmpdir"

options = { beanstalkd: "beanstalkd" }
OptionParser.new do |o|
  o.on("--queuehub PATH") { |v| options[:queuehub] = File.expand_path(v) }
  o.on("--beanstalkd PATH") { |v| options[:beanstalkd] = v }
end.parse!
abort "--queuehub PATH is required" unless options[:queuehub]

def free_port
  server = TCPServer.new("127.0.0.1", 0)
  server.addr[1]
ensure
  server&.close
end

# Starts `argv`, waits until `port` takes connections; yields; stops it.
def serving(argv, port)
  pid = Process.spawn(*argv, out: File::NULL, err: File::NULL)
  300.times do
    begin
      TCPSocket.new("127.0.0.1", port).close
      break
    rescue SystemCallError
      sleep 0.05
    end
  end
  yield "127.0.0.1:#{port}"
ensure
  Process.kill("TERM", pid) rescue nil
  Process.wait(pid) rescue nil
end

# What a session saw: each step's label and result (or the error it raised).
class Transcript
  attr_reader :steps

  def initialize
    @steps = []
    @ids = {}
  end

  # A job id as the order it first appeared in.
  def id(job_id)
    @ids[job_id.to_i] ||= "##{@ids.size + 1}"
  end

  def step(label)
    value = begin
      yield
    rescue Beaneater::AbortProcessingError
      raise
    rescue StandardError => e
      "error #{e.class}"
    end
    @steps << [label, value]
  end
end

# Puts, peeks, reserves, touch, release, bury, kick, delete and stats, the way beaneater's
# tube and job objects issue them.
def tubes_and_jobs(address, t)
  b = Beaneater.new(address)
  tube = b.tubes["bg_starmap"]
  t.step("put") { t.id(tube.put("job one", pri: 10, ttr: 5)[:id]) }
  t.step("put with a lower priority") { t.id(tube.put("job two", pri: 5)[:id]) }
  t.step("put delayed") { t.id(tube.put("later", delay: 1)[:id]) }
  t.step("tube stats") do
    s = tube.stats
    [s.name, s.current_jobs_ready, s.current_jobs_delayed, s.total_jobs]
  end
  t.step("peek ready") { j = tube.peek(:ready); [t.id(j.id), j.body] }
  t.step("peek delayed") { j = tube.peek(:delayed); [t.id(j.id), j.body] }
  t.step("peek buried on none") { tube.peek(:buried) }
  b.tubes.watch!("bg_starmap")
  t.step("watched") { b.tubes.watched.map(&:name) }
  t.step("used") { b.tubes.used.name }
  t.step("all tubes") { b.tubes.all.map(&:name).sort }
  job = nil
  t.step("reserve") { job = b.tubes.reserve(2); [t.id(job.id), job.body, job.reserved?] }
  t.step("job stats") { s = job.stats; [s.state, s.pri, s.ttr, s.reserves, s.tube] }
  t.step("touch") { job.touch }
  t.step("release with a new priority") { job.release(pri: 3, delay: 0) }
  t.step("reserve it again") { job = b.tubes.reserve(2); [t.id(job.id), job.body] }
  t.step("bury") { job.bury }
  t.step("exists") { job.exists? }
  t.step("peek buried") { k = tube.peek(:buried); [t.id(k.id), k.body] }
  t.step("kick") { tube.kick(1) }
  t.step("reserve the kicked job") { job = b.tubes.reserve(2); [t.id(job.id), job.body] }
  t.step("delete") { job.delete }
  t.step("find a deleted job") { b.jobs.find(job.id) }
  t.step("reserve the other") { job = b.tubes.reserve(3); job.delete; [t.id(job.id), job.body] }
  t.step("reserve the delayed one") { job = b.tubes.reserve(3); job.delete; [t.id(job.id), job.body] }
  t.step("reserve on an empty tube") { b.tubes.reserve(0) }
  t.step("pause") { tube.pause(1) }
  t.step("tube clear") { tube.put("x"); tube.put("y"); tube.clear; tube.stats.current_jobs_ready }
  t.step("stats total jobs") { b.stats.total_jobs }
  b.close
end

# beaneater's worker loop (`jobs.register` and `jobs.process!`): a handled job is deleted, one
# whose handler raises a retryable error is released with a delay and comes back, one whose
# handler fails otherwise is buried, and AbortProcessingError ends the loop.
def worker_loop(address, t)
  b = Beaneater.new(address)
  tube = b.tubes["bg_building"]
  seen = []
  tries = Hash.new(0)
  b.jobs.register("bg_building", retry_on: [IOError], max_retries: 2) do |job|
    tries[job.body] += 1
    seen << job.body
    raise IOError, "try again" if job.body == "flaky" && tries[job.body] == 1
    raise ArgumentError, "broken" if job.body == "broken"
    raise Beaneater::AbortProcessingError if job.body == "stop"
  end
  %w[first flaky broken second].each { |body| t.step("put #{body}") { t.id(tube.put(body)[:id]) } }
  t.step("put stop, delayed past the flaky job's release") { t.id(tube.put("stop", delay: 2)[:id]) }
  b.jobs.process!(reserve_timeout: 1, release_delay: 1)
  t.step("handled, in order") { seen }
  t.step("tube stats after") do
    s = tube.stats
    [s.current_jobs_ready, s.current_jobs_buried, s.current_jobs_reserved, s.total_jobs]
  end
  t.step("the broken job is buried") { j = tube.peek(:buried); [t.id(j.id), j.body] }
  b.close
end

sessions = [method(:tubes_and_jobs), method(:worker_loop)]
failures = 0
sessions.each do |session|
  transcripts = Dir.mktmpdir do |tmp|
    bport = free_port
    reference = serving([options[:beanstalkd], "-l", "127.0.0.1", "-p", bport.to_s], bport) do |address|
      Transcript.new.tap { |t| session.call(address, t) }
    end
    qport = free_port
    queuehub_argv = [
      options[:queuehub], "--listen", "127.0.0.1:#{free_port}",
      "--beanstalk-listen", "127.0.0.1:#{qport}", "--data-dir", File.join(tmp, "data")
    ]
    got = serving(queuehub_argv, qport) do |address|
      Transcript.new.tap { |t| session.call(address, t) }
    end
    [reference, got]
  end
  want, got = transcripts.map(&:steps)
  same = want == got
  puts "#{same ? 'ok  ' : 'DIFF'} #{session.name} (#{want.size} steps)"
  failures += 1 unless same
  next if same && !ENV["SHOW"] # SHOW=1 prints every transcript

  [want.size, got.size].max.times do |n|
    w = want[n] || ["-", "-"]
    g = got[n] || ["-", "-"]
    puts "  #{w == g ? '  ' : '!!'} #{w[0]}\n       beanstalkd: #{w[1].inspect}\n       queuehub:   #{g[1].inspect}"
  end
end
if failures.positive?
  puts "#{failures} session(s) differ"
  exit 1
end
puts "every step matched"
