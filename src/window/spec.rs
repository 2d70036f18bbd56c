//! Window shapes a pipeline can declare.

use std::fmt;

use crate::event::time::parse_duration_ms;

/// The window of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size_ms`.
    Tumble { size_ms: i64 },
    /// Windows of `size_ms` starting every `slide_ms`; computed from
    /// per-slide partial aggregates, never by rescanning raw rows.
    Hop { size_ms: i64, slide_ms: i64 },
    /// The `traders` snapshot, evaluated each time event time crosses a
    /// multiple of `every_ms`.
    Snapshot { every_ms: i64 },
}

impl WindowSpec {
    /// Parses `tumble 1m`, `hop 15d every 1d` or `snapshot 1d`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let dur = |w: &str| -> Result<i64, String> {
            let ms = parse_duration_ms(w)?;
            if ms <= 0 {
                return Err(format!("window durations must be positive, got {w:?}"));
            }
            Ok(ms)
        };
        match words.as_slice() {
            ["tumble", size] => Ok(WindowSpec::Tumble {
                size_ms: dur(size)?,
            }),
            ["hop", size, "every", slide] => {
                let (size_ms, slide_ms) = (dur(size)?, dur(slide)?);
                if size_ms % slide_ms != 0 || size_ms <= slide_ms {
                    return Err(format!(
                        "hop size {size} must be a multiple of, and larger than, its slide {slide}"
                    ));
                }
                Ok(WindowSpec::Hop { size_ms, slide_ms })
            }
            ["snapshot", every] => Ok(WindowSpec::Snapshot {
                every_ms: dur(every)?,
            }),
            _ => Err(format!(
                "bad window {s:?}; expected `tumble 1m`, `hop 15d every 1d` or `snapshot 1d`"
            )),
        }
    }

    /// The step at which results are produced: the tumble size, the hop
    /// slide, or the snapshot interval.
    pub fn step_ms(&self) -> i64 {
        match *self {
            WindowSpec::Tumble { size_ms } => size_ms,
            WindowSpec::Hop { slide_ms, .. } => slide_ms,
            WindowSpec::Snapshot { every_ms } => every_ms,
        }
    }

    /// Length of one window.
    pub fn size_ms(&self) -> i64 {
        match *self {
            WindowSpec::Tumble { size_ms } | WindowSpec::Hop { size_ms, .. } => size_ms,
            WindowSpec::Snapshot { every_ms } => every_ms,
        }
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSpec::Tumble { size_ms } => write!(f, "tumble {size_ms}ms"),
            WindowSpec::Hop { size_ms, slide_ms } => {
                write!(f, "hop {size_ms}ms every {slide_ms}ms")
            }
            WindowSpec::Snapshot { every_ms } => write!(f, "snapshot {every_ms}ms"),
        }
    }
}

/// `t` rounded down to a multiple of `step`.
pub fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::time::{DAY_MS, MINUTE_MS};

    #[test]
    fn parses_the_three_shapes() {
        assert_eq!(
            WindowSpec::parse("tumble 1m"),
            Ok(WindowSpec::Tumble { size_ms: MINUTE_MS })
        );
        assert_eq!(
            WindowSpec::parse("hop 15d every 1d"),
            Ok(WindowSpec::Hop {
                size_ms: 15 * DAY_MS,
                slide_ms: DAY_MS
            })
        );
        assert_eq!(
            WindowSpec::parse("snapshot 1d"),
            Ok(WindowSpec::Snapshot { every_ms: DAY_MS })
        );
        assert!(WindowSpec::parse("hop 15d every 4d").is_err());
        assert!(WindowSpec::parse("sliding 1m").is_err());
        assert!(WindowSpec::parse("tumble 0s").is_err());
    }

    #[test]
    fn floors_negative_times_down() {
        assert_eq!(floor_to(-1, 10), -10);
        assert_eq!(floor_to(19, 10), 10);
    }
}
