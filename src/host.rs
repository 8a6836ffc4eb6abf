//! What the process knows of the machine it runs on: its name, its kernel, and the CPU time
//! the process has used. Read from Linux's `/proc`; elsewhere each falls back to a stand-in.

/// The machine's name (the kernel's node name), or `node` if it cannot be read.
pub fn name() -> String {
    read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "node".to_owned())
}

/// The kernel's version string, as `uname -v` prints it (beanstalkd's `os`), or the name of
/// the operating system if it cannot be read.
pub fn os_version() -> String {
    read_trimmed("/proc/sys/kernel/version").unwrap_or_else(|| std::env::consts::OS.to_owned())
}

/// The processor architecture, as `uname -m` prints it (beanstalkd's `platform`).
pub fn platform() -> &'static str {
    std::env::consts::ARCH
}

/// CPU time this process has used so far, in user and in kernel mode; zero if it cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: std::time::Duration,
    pub system: std::time::Duration,
}

/// This process's [`CpuTime`], from `/proc/self/stat`.
pub fn cpu_time() -> CpuTime {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .unwrap_or_default()
}

/// Clock ticks per second in `/proc/<pid>/stat` (Linux's `USER_HZ`, 100 on every architecture
/// it runs on).
const TICKS_PER_SECOND: u64 = 100;

/// The user and system times of a `/proc/<pid>/stat` line: its 14th and 15th fields, counted
/// after the command name, which is in parentheses and may itself hold spaces or parentheses.
fn parse_stat(stat: &str) -> Option<CpuTime> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // The fields after the name start with the 3rd (the state).
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut ticks = || fields.next()?.parse::<u64>().ok();
    let (user, system) = (ticks()?, ticks()?);
    let duration = |ticks: u64| std::time::Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND);
    Some(CpuTime {
        user: duration(user),
        system: duration(system),
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn user_and_system_time_are_the_14th_and_15th_fields_after_a_name_with_spaces() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 912 0 0 0 \
                    1234 56 0 0 20 0 9 0 1000 123456 789 18446744073709551615";
        let time = parse_stat(stat).unwrap();
        assert_eq!(time.user, Duration::from_millis(12_340));
        assert_eq!(time.system, Duration::from_millis(560));
    }

    #[test]
    fn a_line_without_the_fields_is_none() {
        assert_eq!(parse_stat("4242 (queuehub) S 1"), None);
        assert_eq!(parse_stat("no name here"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_used_some_cpu_and_its_machine_has_a_name() {
        // Spin until the kernel has counted a tick of CPU time (10 ms): it must show.
        let start = std::time::Instant::now();
        while cpu_time() == CpuTime::default() && start.elapsed() < Duration::from_secs(10) {
            std::hint::black_box((0..10_000u64).sum::<u64>());
        }
        assert_ne!(cpu_time(), CpuTime::default());
        assert!(!name().is_empty());
        assert!(!os_version().is_empty());
    }
}
