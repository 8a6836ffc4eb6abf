<?php
// Differential test of queuehub's beanstalk door against Debian's beanstalkd, with pheanstalk,
// the PHP client (Debian's php-pda-pheanstalk, pheanstalk 4). Runs the same session against a
// fresh beanstalkd and a fresh queuehub and compares every result, step by step; job ids are
// compared by the order they first appeared in. Exits 1 if a step differs, printing both
// transcripts.
//
//   php tests/beanstalk/differential.php --queuehub target/debug/queuehub [--beanstalkd PATH]
//   SHOW=1 php tests/beanstalk/differential.php ...   # print every transcript
//
// Needs `apt-get install php-cli php-pda-pheanstalk beanstalkd` (.ci/run installs them).

require_once 'Pheanstalk/autoload.php';

use Pheanstalk\Job;
use Pheanstalk\JobId;
use Pheanstalk\Pheanstalk;

$options = getopt('', ['queuehub:', 'beanstalkd:']);
if (!isset($options['queuehub'])) {
    fwrite(STDERR, "--queuehub PATH is required\n");
    exit(2);
}
$queuehub = realpath($options['queuehub']);
$beanstalkd = $options['beanstalkd'] ?? 'beanstalkd';

function free_port(): int
{
    $server = stream_socket_server('tcp://127.0.0.1:0');
    $name = stream_socket_get_name($server, false);
    fclose($server);
    return (int) substr($name, strrpos($name, ':') + 1);
}

/** Starts `$argv`, waits until `$port` takes connections, runs `$session`, stops it. */
function serving(array $argv, int $port, callable $session): array
{
    $process = proc_open($argv, [1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
    for ($i = 0; $i < 300; $i++) {
        $probe = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $error, 0.2);
        if ($probe) {
            fclose($probe);
            break;
        }
        usleep(50000);
    }
    try {
        return $session($port);
    } finally {
        proc_terminate($process);
        proc_close($process);
    }
}

/** What a session saw: each step's label and result (or the exception it raised). */
final class Transcript
{
    public array $steps = [];
    private array $ids = [];

    public function id(int $id): string
    {
        return $this->ids[$id] ??= '#' . (count($this->ids) + 1);
    }

    public function job(?Job $job): ?array
    {
        return $job === null ? null : [$this->id($job->getId()), $job->getData()];
    }

    public function step(string $label, callable $run): mixed
    {
        try {
            $value = $run();
        } catch (\Throwable $e) {
            $value = 'error ' . (new \ReflectionClass($e))->getShortName();
        }
        $this->steps[] = [$label, $value];
        return $value;
    }
}

/** A producer and a worker the way PHP applications use pheanstalk. */
function session(int $port): array
{
    $t = new Transcript();
    $p = Pheanstalk::create('127.0.0.1', $port);
    $stat = fn ($response, array $keys) => array_map(fn ($k) => $response[$k] ?? null, $keys);
    $t->step('use', fn () => $p->useTube('bg_captcha')->listTubeUsed(true));
    $t->step('put', fn () => $t->id($p->put('captcha one', 10, 0, 5)->getId()));
    $t->step('put with a lower priority', fn () => $t->id($p->put('two', 5)->getId()));
    $t->step('put delayed', fn () => $t->id($p->put('later', 1024, 1)->getId()));
    $t->step('watch only', fn () => $p->watchOnly('bg_captcha')->listTubesWatched(true));
    $t->step('tubes', function () use ($p) {
        $tubes = $p->listTubes();
        sort($tubes);
        return $tubes;
    });
    $t->step('stats-tube', fn () => $stat($p->statsTube('bg_captcha'), ['name', 'current-jobs-ready', 'current-jobs-delayed', 'total-jobs']));
    $t->step('peek ready', fn () => $t->job($p->peekReady()));
    $t->step('peek delayed', fn () => $t->job($p->peekDelayed()));
    $t->step('peek buried on none', fn () => $t->job($p->peekBuried()));
    $job = $t->step('reserve', fn () => $p->reserveWithTimeout(2));
    $t->steps[count($t->steps) - 1][1] = $t->job($job);
    $t->step('stats-job', fn () => $stat($p->statsJob($job), ['tube', 'state', 'pri', 'ttr', 'reserves']));
    $t->step('touch', fn () => $p->touch($job));
    $t->step('release with a new priority', fn () => $p->release($job, 3));
    $job = $p->reserveWithTimeout(2);
    $t->step('reserve it again', fn () => $t->job($job));
    $t->step('bury', fn () => $p->bury($job));
    $t->step('peek buried', fn () => $t->job($p->peekBuried()));
    $t->step('kick-job', fn () => $p->kickJob($job));
    $t->step('kick: the delayed job', fn () => $p->kick(5));
    $t->step('peek by id', fn () => $t->job($p->peek($job)));
    $t->step('delete', fn () => $p->delete($job));
    $t->step('peek a deleted job', fn () => $t->job($p->peek($job)));
    $t->step('delete it again', fn () => $p->delete($job));
    $t->step('touch a job not reserved', fn () => $p->touch(new JobId(424242)));
    foreach (['the other', 'the delayed one'] as $which) {
        $t->step("reserve $which", function () use ($p, $t) {
            $job = $p->reserveWithTimeout(3);
            $p->delete($job);
            return $t->job($job);
        });
    }
    $t->step('reserve on an empty tube', fn () => $t->job($p->reserveWithTimeout(0)));
    $t->step('pause', fn () => $p->pauseTube('bg_captcha', 1));
    $t->step('resume', fn () => $p->resumeTube('bg_captcha'));
    $t->step('stats', fn () => $stat($p->stats(), ['current-jobs-ready', 'total-jobs', 'cmd-put', 'cmd-delete', 'current-tubes']));
    $t->step('ignore the last watched tube', fn () => $p->ignore('bg_captcha')->listTubesWatched(true));
    return $t->steps;
}

$dir = sys_get_temp_dir() . '/qh-php-' . getmypid();
$bport = free_port();
$want = serving([$beanstalkd, '-l', '127.0.0.1', '-p', (string) $bport], $bport, 'session');
$qport = free_port();
$got = serving([
    $queuehub, '--listen', '127.0.0.1:' . free_port(),
    '--beanstalk-listen', "127.0.0.1:$qport", '--data-dir', "$dir/data",
], $qport, 'session');
exec('rm -rf ' . escapeshellarg($dir));

$same = $want == $got;
printf("%s pheanstalk session (%d steps)\n", $same ? 'ok  ' : 'DIFF', count($want));
if (!$same || getenv('SHOW')) {
    for ($n = 0; $n < max(count($want), count($got)); $n++) {
        $w = $want[$n] ?? ['-', '-'];
        $g = $got[$n] ?? ['-', '-'];
        printf("  %s %s\n       beanstalkd: %s\n       queuehub:   %s\n", $w == $g ? '  ' : '!!', $w[0],
            json_encode($w[1]), json_encode($g[1]));
    }
}
if (!$same) {
    echo "the session differs\n";
    exit(1);
}
echo "every step matched\n";
