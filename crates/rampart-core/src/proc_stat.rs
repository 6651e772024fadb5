//! CPU time as Linux's `/proc/…/stat` files give it: of this process, and
//! of this process's threads by name. Where `/proc` is missing (not Linux)
//! the readers return `None` rather than zeros.

/// Clock ticks per second in `/proc` (`USER_HZ`, fixed at 100 by the kernel
/// ABI on every architecture Rampart builds for).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// Field `n` of a `stat` line, numbered as `proc(5)` numbers them (1 is the
/// id, 2 the command name, 3 the state, 14 `utime`). The command name may
/// hold spaces and parentheses, so fields are counted from its last `)`.
pub fn field(stat: &str, n: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// The command (thread) name of a `stat` line: what lies between the first
/// `(` and the last `)`.
pub fn name(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// User plus system CPU time of a `stat` line, in seconds.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    Some((field(stat, 14)? + field(stat, 15)?) as f64 / TICKS_PER_SECOND)
}

/// This process's CPU time so far, in seconds (threads that ended included).
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// CPU time so far of this process's running threads whose name starts
/// with `prefix`, in seconds. A thread that has ended is no longer counted:
/// give the threads to be measured a keep-alive longer than the measure.
pub fn threads_cpu_seconds(prefix: &str) -> Option<f64> {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread may end between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if name(&stat).is_some_and(|n| n.starts_with(prefix)) {
            total += cpu_seconds(&stat).unwrap_or(0.0);
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (ramp) art) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                        250 130 0 0 20 0 7 0 12345 1000000 500 18446744073709551615";

    #[test]
    fn fields_are_counted_after_the_name_however_it_is_written() {
        assert_eq!(name(STAT), Some("ramp) art"));
        assert_eq!(field(STAT, 4), Some(1));
        assert_eq!(field(STAT, 14), Some(250));
        assert_eq!(field(STAT, 22), Some(12345));
        assert_eq!(cpu_seconds(STAT), Some(3.8));
        assert_eq!(field(STAT, 2), None);
        assert_eq!(field(STAT, 99), None);
        assert_eq!(cpu_seconds("garbage"), None);
        assert_eq!(name("garbage"), None);
    }

    #[test]
    fn this_process_and_its_threads_are_read() {
        // A thread that spins until its own CPU time shows under its name.
        let spin = std::thread::Builder::new()
            .name("proc-stat-spin".into())
            .spawn(|| {
                let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
                let mut n = 0u64;
                loop {
                    for _ in 0..1_000_000 {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                    let spent = threads_cpu_seconds("proc-stat-sp").expect("/proc on Linux");
                    if spent > 0.0 || std::time::Instant::now() > give_up {
                        return spent;
                    }
                }
            })
            .expect("a thread");
        let spent = spin.join().expect("the thread ends");
        assert!(spent > 0.0, "30 s of spinning counted {spent} s");
        assert_eq!(threads_cpu_seconds("no thread is named so"), Some(0.0));
        assert!(process_cpu_seconds().expect("/proc on Linux") >= spent);
    }
}
