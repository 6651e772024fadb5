//! The process's own metrics, read from `/proc/self` at scrape time under
//! the names every Prometheus client library uses (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_threads`, `process_start_time_seconds`,
//! `process_virtual_memory_bytes`). Where `/proc` is missing (not Linux)
//! nothing is exported rather than zeros.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use rampart_core::proc_stat::{self, TICKS_PER_SECOND};

/// What `/proc/self` says of this process.
#[derive(Debug, Default, Clone, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    start_time_seconds: Option<f64>,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

/// Parses `/proc/self/stat` (CPU time and start in ticks since boot) and
/// `/proc/self/status` (`VmRSS`, `VmSize`, `Threads`, in kB where sized);
/// `boot_time` is `btime` from `/proc/stat`.
fn parse(stat: &str, status: &str, boot_time: Option<u64>) -> Option<Sample> {
    let start_ticks = proc_stat::field(stat, 22)?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Sample {
        cpu_seconds: proc_stat::cpu_seconds(stat)?,
        start_time_seconds: boot_time.map(|b| b as f64 + start_ticks as f64 / TICKS_PER_SECOND),
        resident_bytes: kb("VmRSS:")? * 1024,
        virtual_bytes: kb("VmSize:")? * 1024,
        threads: kb("Threads:")?,
        open_fds: None,
        max_fds: None,
    })
}

/// The soft limit on open files from `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn read() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    });
    let mut sample = parse(&stat, &status, boot_time)?;
    sample.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    sample.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| max_open_files(&l));
    Some(sample)
}

/// Exports the process metrics, read when scraped.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, value: i64| {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            clamp(s.resident_bytes),
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            clamp(s.virtual_bytes),
        )?;
        gauge("process_threads", "Number of OS threads", clamp(s.threads))?;
        if let Some(fds) = s.open_fds {
            // The directory listing itself holds one descriptor.
            gauge(
                "process_open_fds",
                "Number of open file descriptors",
                clamp(fds.saturating_sub(1)),
            )?;
        }
        if let Some(max) = s.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                clamp(max),
            )?;
        }
        if let Some(start) = s.start_time_seconds {
            gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                start as i64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_the_kernel_writes_them() {
        let stat = "4242 (ramp art) (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 130 0 0 20 0 7 0 12345 1000000 500 18446744073709551615";
        let status = "Name:\tramp art\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        let s = parse(stat, status, Some(1_700_000_000)).unwrap();
        assert_eq!(s.cpu_seconds, 3.8);
        assert_eq!(s.start_time_seconds, Some(1_700_000_123.45));
        assert_eq!(s.resident_bytes, 10_485_760);
        assert_eq!(s.virtual_bytes, 209_715_200);
        assert_eq!(s.threads, 7);
        assert_eq!(parse("garbage", status, None), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                20000                files\n";
        assert_eq!(max_open_files(limits), Some(20_000));
    }

    #[test]
    fn this_process_is_read() {
        let s = read().expect("/proc/self on Linux");
        assert!(s.resident_bytes > 0 && s.threads >= 1, "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
    }
}
