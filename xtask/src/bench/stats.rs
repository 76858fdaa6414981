//! The statistics of a benchmark row: quartiles of the samples, and the verdict against a target
//! that takes the spread of both sides into account.

/// The first quartile, the median and the third quartile of a set of samples, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quartiles {
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
}

impl Quartiles {
    /// The quartiles of `samples` (sorted in place), interpolated linearly between the closest
    /// ranks as numpy's `percentile` does; all NaN when there are no samples.
    pub fn of(samples: &mut [f64]) -> Quartiles {
        samples.sort_by(f64::total_cmp);
        Quartiles {
            p25: percentile(samples, 0.25),
            median: percentile(samples, 0.5),
            p75: percentile(samples, 0.75),
        }
    }

    /// A fixed value, without spread (an absolute target).
    pub fn exact(value: f64) -> Quartiles {
        Quartiles {
            p25: value,
            median: value,
            p75: value,
        }
    }

    /// Every quartile times `factor`.
    pub fn scaled(self, factor: f64) -> Quartiles {
        Quartiles {
            p25: self.p25 * factor,
            median: self.median * factor,
            p75: self.p75 * factor,
        }
    }
}

/// The `q` quantile of sorted `samples` (linear interpolation); NaN when empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => {
            let rank = q * (n - 1) as f64;
            let below = rank.floor() as usize;
            let above = rank.ceil() as usize;
            let weight = rank - below as f64;
            sorted[below] * (1.0 - weight) + sorted[above] * weight
        }
    }
}

/// How a row stands against its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// No target applies at this size.
    None,
    /// The operation has no target at any size (the issue asks for the comparison only): its
    /// ratio is information.
    Information,
    /// ndstore's whole interquartile range lies below the target's.
    Met,
    /// The two interquartile ranges overlap: this run cannot tell.
    WithinNoise,
    /// ndstore's whole interquartile range lies above the target's.
    Missed,
}

impl Verdict {
    /// The verdict of ndstore's times `ours` against `target`, the reference's times already
    /// multiplied by the allowed ratio.
    pub fn judge(ours: Quartiles, target: Quartiles) -> Verdict {
        if ours.p75.is_nan() || target.p25.is_nan() {
            Verdict::Missed
        } else if ours.p75 < target.p25 {
            Verdict::Met
        } else if ours.p25 > target.p75 {
            Verdict::Missed
        } else {
            Verdict::WithinNoise
        }
    }

    /// Two targets together: the worse verdict wins, and a target that does not apply is
    /// ignored.
    pub fn and(self, other: Verdict) -> Verdict {
        self.max(other)
    }

    /// The word the report uses.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::None => "none",
            Verdict::Information => "information",
            Verdict::Met => "met",
            Verdict::WithinNoise => "within noise",
            Verdict::Missed => "missed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_as_numpy_does() {
        // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) == [1.75, 2.5, 3.25]
        let q = Quartiles::of(&mut [4.0, 1.0, 3.0, 2.0]);
        assert_eq!(
            q,
            Quartiles {
                p25: 1.75,
                median: 2.5,
                p75: 3.25
            }
        );
        let one = Quartiles::of(&mut [7.0]);
        assert_eq!(one, Quartiles::exact(7.0));
        assert!(Quartiles::of(&mut []).median.is_nan());
    }

    #[test]
    fn verdicts_follow_the_interquartile_ranges() {
        let target = Quartiles {
            p25: 10.0,
            median: 11.0,
            p75: 12.0,
        };
        let below = Quartiles {
            p25: 8.0,
            median: 9.0,
            p75: 9.9,
        };
        let overlapping = Quartiles {
            p25: 9.0,
            median: 9.6,
            p75: 10.1,
        };
        let above = Quartiles {
            p25: 12.1,
            median: 13.0,
            p75: 14.0,
        };
        assert_eq!(Verdict::judge(below, target), Verdict::Met);
        assert_eq!(Verdict::judge(overlapping, target), Verdict::WithinNoise);
        assert_eq!(Verdict::judge(above, target), Verdict::Missed);
        assert_eq!(
            Verdict::judge(Quartiles::of(&mut []), target),
            Verdict::Missed
        );
        assert_eq!(Verdict::None.and(Verdict::Met), Verdict::Met);
        assert_eq!(Verdict::Met.and(Verdict::WithinNoise), Verdict::WithinNoise);
        assert_eq!(Verdict::Missed.and(Verdict::WithinNoise), Verdict::Missed);
    }
}
