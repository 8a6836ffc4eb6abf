//! The load driver of `benches/beanstalk/compare.sh`: put + reserve + delete against any
//! beanstalk server, over the protocol itself (no client library in the way).
//!
//! P producer connections each put jobs of B bytes on a fresh tube, one at a time (each waits
//! for its `INSERTED`, as a client library does); at the same time W worker connections each
//! `reserve-with-timeout 1` and `delete` in a loop, until N jobs were deleted. Prints one JSON
//! line: jobs deleted per second from the first put to the last `DELETED` (the end-to-end
//! rate), puts per second (until the last `INSERTED`), the put round trip's p50/p99, and the
//! CPU the driver itself used (so a run can show that the driver was not the limit).
//!
//!     cargo run --release --example beanstalk-driver -- ADDR [--jobs N] [--producers P]
//!         [--workers W] [--bytes B] [--label NAME]
//!
//! One task per connection on a current-thread runtime: the driver uses one core at most.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Options {
    addr: String,
    jobs: u64,
    producers: u64,
    workers: u64,
    bytes: usize,
    label: String,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        addr: args
            .next()
            .ok_or("usage: beanstalk-driver ADDR [options]")?,
        jobs: 100_000,
        producers: 32,
        workers: 8,
        bytes: 200,
        label: String::new(),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--jobs" => options.jobs = number()?,
            "--producers" => options.producers = number()?.max(1),
            "--workers" => options.workers = number()?.max(1),
            "--bytes" => options.bytes = number()? as usize,
            "--label" => options.label = value,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// One connection: commands out, replies in.
struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Conn {
    async fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, read),
            writer,
            line: String::new(),
        })
    }

    /// Sends `command` and reads one reply line (without its CRLF).
    async fn ask(&mut self, command: &[u8]) -> std::io::Result<&str> {
        self.writer.write_all(command).await?;
        self.line.clear();
        self.reader.read_line(&mut self.line).await?;
        Ok(self.line.trim_end())
    }
}

fn broken(what: &str, reply: &str) -> std::io::Error {
    std::io::Error::other(format!("{what}: unexpected reply {reply:?}"))
}

async fn produce(
    addr: String,
    tube: String,
    share: u64,
    body: Arc<Vec<u8>>,
) -> std::io::Result<Vec<u32>> {
    let mut conn = Conn::open(&addr).await?;
    let used = format!("use {tube}\r\n");
    let reply = conn.ask(used.as_bytes()).await?;
    if !reply.starts_with("USING") {
        return Err(broken("use", reply));
    }
    let mut put = format!("put 1024 0 60 {}\r\n", body.len()).into_bytes();
    put.extend_from_slice(&body);
    put.extend_from_slice(b"\r\n");
    let mut latencies = Vec::with_capacity(share as usize);
    for _ in 0..share {
        let began = Instant::now();
        let reply = conn.ask(&put).await?;
        if !reply.starts_with("INSERTED") {
            return Err(broken("put", reply));
        }
        latencies.push(began.elapsed().as_micros() as u32);
    }
    Ok(latencies)
}

/// Counts deleted jobs and notes when the last one was answered.
struct Progress {
    began: Instant,
    target: u64,
    deleted: AtomicU64,
    /// Nanoseconds from `began` to the `DELETED` that reached the target.
    end_ns: AtomicU64,
}

async fn work(addr: String, tube: String, progress: Arc<Progress>) -> std::io::Result<()> {
    let mut conn = Conn::open(&addr).await?;
    for command in [format!("watch {tube}\r\n"), "ignore default\r\n".to_owned()] {
        let reply = conn.ask(command.as_bytes()).await?;
        if !reply.starts_with("WATCHING") {
            return Err(broken("watch", reply));
        }
    }
    let mut body = Vec::new();
    while progress.deleted.load(Ordering::Relaxed) < progress.target {
        let reply = conn.ask(b"reserve-with-timeout 1\r\n").await?;
        if reply == "TIMED_OUT" {
            continue;
        }
        let mut words = reply.split(' ');
        let (Some("RESERVED"), Some(id), Some(bytes)) = (words.next(), words.next(), words.next())
        else {
            return Err(broken("reserve", reply));
        };
        let id = id.to_owned();
        let bytes: usize = bytes.parse().map_err(|_| broken("reserve", reply))?;
        body.resize(bytes + 2, 0);
        conn.reader.read_exact(&mut body).await?;
        let delete = format!("delete {id}\r\n");
        let reply = conn.ask(delete.as_bytes()).await?;
        if reply != "DELETED" {
            return Err(broken("delete", reply));
        }
        if progress.deleted.fetch_add(1, Ordering::Relaxed) + 1 == progress.target {
            let ns = progress.began.elapsed().as_nanos() as u64;
            progress.end_ns.store(ns, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[at]) / 1000.0
}

/// CPU seconds this process used so far (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the ')'; 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

async fn drive(options: Options) -> std::io::Result<String> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let tube = format!("bench-{}-{}", std::process::id(), since_epoch.as_micros());
    let body = Arc::new(vec![b'x'; options.bytes]);
    let cpu_before = cpu_seconds();
    let began = Instant::now();
    let progress = Arc::new(Progress {
        began,
        target: options.jobs,
        deleted: AtomicU64::new(0),
        end_ns: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..options.workers)
        .map(|_| {
            let (addr, tube) = (options.addr.clone(), tube.clone());
            tokio::spawn(work(addr, tube, Arc::clone(&progress)))
        })
        .collect();
    let producers: Vec<_> = (0..options.producers)
        .map(|i| {
            let share =
                options.jobs / options.producers + u64::from(i < options.jobs % options.producers);
            let (addr, tube, body) = (options.addr.clone(), tube.clone(), Arc::clone(&body));
            tokio::spawn(produce(addr, tube, share, body))
        })
        .collect();
    let mut latencies = Vec::with_capacity(options.jobs as usize);
    for producer in producers {
        latencies.extend(producer.await.map_err(std::io::Error::other)??);
    }
    let puts_done = began.elapsed();
    // Workers waiting in `reserve-with-timeout 1` when the last job went end up to 1 s
    // later; the run ends at the last `DELETED`.
    let wait = tokio::time::timeout(Duration::from_secs(600), async {
        for worker in workers {
            worker.await.map_err(std::io::Error::other)??;
        }
        Ok::<(), std::io::Error>(())
    });
    wait.await.map_err(std::io::Error::other)??;
    let elapsed = progress.end_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let cpu = cpu_seconds() - cpu_before;
    latencies.sort_unstable();
    let deleted = progress.deleted.load(Ordering::Relaxed);
    Ok(format!(
        "{{\"label\":\"{}\",\"jobs\":{},\"producers\":{},\"workers\":{},\"bytes\":{},\
         \"jobs_per_s\":{:.0},\"puts_per_s\":{:.0},\"put_p50_ms\":{:.2},\"put_p99_ms\":{:.2},\
         \"elapsed_s\":{:.3},\"driver_cpu_s\":{:.2}}}",
        options.label,
        deleted,
        options.producers,
        options.workers,
        options.bytes,
        deleted as f64 / elapsed,
        options.jobs as f64 / puts_done.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        elapsed,
        cpu,
    ))
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(drive(options)) {
        Ok(line) => println!("{line}"),
        Err(err) => {
            eprintln!("beanstalk-driver: {err}");
            std::process::exit(1);
        }
    }
}
