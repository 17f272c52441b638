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
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3)? + cpu.get(4).copied().unwrap_or(0);
    let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) close with ')'.
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
        assert!(IdleProbe::default().others_busy().is_none(), "first sample");
        let mut p = IdleProbe::default();
        p.others_busy();
        std::thread::sleep(std::time::Duration::from_millis(50));
        if let Some(s) = p.others_busy() {
            assert!((0.0..=1.0).contains(&s));
        }
    }
}
