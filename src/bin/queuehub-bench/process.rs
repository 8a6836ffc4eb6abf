//! What /proc says about a process (Linux): its resident memory (VmRSS) and the CPU time it
//! has used, so that a report can say how much of the machine the server (`--pid`) and the
//! bench itself took while it ran.

/// Clock ticks per second of /proc's CPU times (USER_HZ, fixed at 100 in Linux's ABI on
/// every mainstream architecture).
const TICKS_PER_SECOND: f64 = 100.0;

/// The resident memory of process `pid` in KiB (VmRSS in /proc/PID/status).
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|err| format!("reading {path}: {err}"))?;
    parse_vm_rss(&status).ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// CPU seconds (user + system, all its threads) process `pid` has used so far; `None` if
/// /proc cannot tell (the bench's own pid is `std::process::id()`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / TICKS_PER_SECOND)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime: fields 14 and 15 of /proc/PID/stat, counted after the command name
/// (which is in parentheses and may itself hold spaces).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tnode\nVmPeak:\t  999 kB\nVmRSS:\t   52344 kB\nThreads:\t7\n";
        assert_eq!(parse_vm_rss(status), Some(52344));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0, "our own RSS");
    }

    #[test]
    fn cpu_time_is_user_plus_system_after_the_name() {
        let stat = "4242 (tokio runtime) S 1 2 3 0 -1 4194304 10 0 0 0 250 30 0 0 20 0 5 0";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
        assert_eq!(parse_cpu_ticks("4242 (x"), None);
        assert!(
            cpu_seconds(std::process::id()).is_some(),
            "our own CPU time"
        );
    }
}
