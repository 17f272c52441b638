//! When an owner lets the node take work: hours of the day, and an idle-only mode that steps aside while
//! the machine's owner is using it. Outside them the node declines new offers as busy (a passing reason: no
//! penalty, the task goes elsewhere) and announces no free slots; tasks already in hand finish.

use std::fmt;
use std::str::FromStr;

/// Hours of the day (local time) the node takes work: `start..end`, wrapping past midnight (`22-7` is
/// 22:00 to 06:59).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourWindow {
    pub start: u8,
    pub end: u8,
}

impl HourWindow {
    /// Whether `hour` (0-23) is inside the window.
    pub fn contains(&self, hour: u8) -> bool {
        if self.start == self.end {
            true
        } else if self.start < self.end {
            (self.start..self.end).contains(&hour)
        } else {
            hour >= self.start || hour < self.end
        }
    }
}

impl FromStr for HourWindow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not an hour window like 22-7 (from 22:00 to 06:59, local time)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start: u8 = a.trim().parse().map_err(|_| bad())?;
        let end: u8 = b.trim().parse().map_err(|_| bad())?;
        if start > 23 || end > 24 {
            return Err(bad());
        }
        Ok(Self {
            start,
            end: end % 24,
        })
    }
}

impl fmt::Display for HourWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:00-{:02}:00", self.start, self.end)
    }
}

/// The owner's limits on when the node works.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Availability {
    /// Take work only in these hours.
    pub hours: Option<HourWindow>,
    /// Take work only while other programs use less than this share of the CPU (0-1), e.g. 0.25.
    pub idle_below: Option<f64>,
}

impl Availability {
    /// `None` if the node may take new work now, else why not (for the decline and the status page).
    /// `hour` is the local hour; `others_busy` the share of CPU other programs used lately, if measured.
    pub fn refusal(&self, hour: u8, others_busy: Option<f64>) -> Option<String> {
        if let Some(w) = self.hours {
            if !w.contains(hour) {
                return Some(format!(
                    "busy: this node takes work only from {w} (local time), its owner's setting"
                ));
            }
        }
        if let (Some(limit), Some(used)) = (self.idle_below, others_busy) {
            if used >= limit {
                return Some(format!(
                    "busy: its owner is using this machine ({:.0} % of the CPU used by other programs; this node \
                     works only below {:.0} %)",
                    used * 100.0,
                    limit * 100.0
                ));
            }
        }
        None
    }
}

/// The local hour of the day.
pub fn local_hour() -> u8 {
    use chrono::Timelike;
    chrono::Local::now().hour() as u8
}

/// Measures the share of CPU time other programs used between two samples (Linux `/proc`): all busy CPU
/// time minus this process's own (its proving threads are not the owner's work).
#[derive(Debug, Default)]
pub struct IdleProbe {
    last: Option<CpuSample>,
}

#[derive(Clone, Copy, Debug)]
struct CpuSample {
    total: u64,
    idle: u64,
    own: u64,
}

impl IdleProbe {
    /// Share (0-1) of the machine's CPU time other programs used since the last call; `None` on the first
    /// call or where `/proc` cannot be read.
    pub fn others_busy(&mut self) -> Option<f64> {
        let now = sample()?;
        let prev = self.last.replace(now)?;
        others_share(prev, now)
    }
}

fn others_share(prev: CpuSample, now: CpuSample) -> Option<f64> {
    let total = now.total.checked_sub(prev.total)?;
    if total == 0 {
        return None;
    }
    let busy = total.saturating_sub(now.idle.saturating_sub(prev.idle));
    let own = now.own.saturating_sub(prev.own);
    Some((busy.saturating_sub(own) as f64 / total as f64).clamp(0.0, 1.0))
}

fn sample() -> Option<CpuSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_sample(&stat, &own_stat)
}

/// A sample from the text of `/proc/stat` (the machine's CPU time) and `/proc/self/stat` (this process's).
fn parse_sample(stat: &str, own_stat: &str) -> Option<CpuSample> {
    let mut fields = stat.lines().next()?.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let cpu: Vec<u64> = fields.map(|v| v.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3)? + cpu.get(4).copied().unwrap_or(0);
    // Fields after the command name (which may hold spaces and parentheses) close with the last ')'.
    let rest = own_stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(CpuSample { total, idle, own })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_windows_wrap_past_midnight() {
        let night: HourWindow = "22-7".parse().unwrap();
        assert!(night.contains(23) && night.contains(0) && night.contains(6));
        assert!(!night.contains(7) && !night.contains(12) && !night.contains(21));
        let day: HourWindow = "9-17".parse().unwrap();
        assert!(day.contains(9) && day.contains(16) && !day.contains(17) && !day.contains(3));
        let all: HourWindow = "0-24".parse().unwrap();
        assert!((0..24).all(|h| all.contains(h)));
        for bad in ["", "7", "25-3", "a-b", "3-30"] {
            assert!(bad.parse::<HourWindow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_node_steps_aside_outside_its_hours_and_while_the_owner_works() {
        let a = Availability {
            hours: Some("22-7".parse().unwrap()),
            idle_below: Some(0.25),
        };
        assert_eq!(a.refusal(23, Some(0.05)), None);
        assert!(a.refusal(12, Some(0.0)).unwrap().contains("22:00-07:00"));
        assert!(a.refusal(1, Some(0.6)).unwrap().contains("60 %"));
        // Not measured yet: hours alone decide.
        assert_eq!(a.refusal(1, None), None);
        assert_eq!(Availability::default().refusal(12, Some(1.0)), None);
    }

    #[test]
    fn other_programs_cpu_share_leaves_out_the_nodes_own() {
        let prev = CpuSample {
            total: 1000,
            idle: 500,
            own: 100,
        };
        // 1000 ticks later: 200 idle, so 800 busy, 600 of them this node's proving.
        let now = CpuSample {
            total: 2000,
            idle: 700,
            own: 700,
        };
        let share = others_share(prev, now).unwrap();
        assert!((share - 0.2).abs() < 1e-9, "{share}");
        // The node's own time is left out even where it is all of the busy time.
        let all_mine = CpuSample {
            total: 2000,
            idle: 700,
            own: 900,
        };
        assert_eq!(others_share(prev, all_mine), Some(0.0));
        // No time passed: nothing to say.
        assert_eq!(others_share(prev, prev), None);
        assert!(IdleProbe::default().others_busy().is_none(), "first sample");
    }

    /// `/proc` as Linux writes it: the first `cpu` line's fields (user nice system idle iowait irq softirq steal
    /// guest guest_nice) and this process's utime and stime, behind a command name with spaces and a ')'.
    #[test]
    fn proc_stat_is_read_field_by_field() {
        let stat = "cpu  4705 356 584 3699176 23060 0 277 11 7 3\ncpu0 2000 100 300 1849588 11530 0 138 5 3 1\n\
                    intr 114930548 113 3 0 0\n";
        let own =
            "4242 (cairn (prove) x) S 1 4242 4242 0 -1 4194560 10 0 0 0 731 122 0 0 20 0 19 0 \
                   5765 5378818048 22416 18446744073709551615";
        let s = parse_sample(stat, own).unwrap();
        assert_eq!(s.total, 4705 + 356 + 584 + 3699176 + 23060 + 277 + 11);
        assert_eq!(s.idle, 3699176 + 23060);
        assert_eq!(s.own, 731 + 122);
        // Not a /proc/stat, or a truncated one: no sample rather than a wrong one.
        assert!(parse_sample("intr 1 2 3\n", own).is_none());
        assert!(parse_sample("cpu 1 2 3\n", own).is_none());
        assert!(parse_sample("cpu 1 2 x 4 5\n", own).is_none());
        assert!(parse_sample(stat, "4242 (cairn) S 1 2").is_none());
    }

    /// On this machine's real `/proc`: CPU time this thread burns shows up as the process's own, and the machine's
    /// total grows with it.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_nodes_own_cpu_time_is_read_from_proc() {
        let before = sample().expect("/proc/stat and /proc/self/stat are readable on Linux");
        // Burn CPU until 5 ticks (50 ms at the usual 100 Hz) show as this process's own; a busy machine only
        // makes it take longer.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let after = loop {
            let spin = std::time::Instant::now();
            while spin.elapsed() < std::time::Duration::from_millis(50) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let now = sample().unwrap();
            if now.own >= before.own + 5 || start.elapsed() > std::time::Duration::from_secs(10) {
                break now;
            }
        };
        assert!(after.own >= before.own + 5, "{before:?} -> {after:?}");
        assert!(
            after.total - before.total >= after.own - before.own,
            "{before:?} -> {after:?}"
        );
    }
}
