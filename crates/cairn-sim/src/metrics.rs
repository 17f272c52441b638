//! Formulas for the reported metrics: percentiles and reward concentration (Gini, HHI, Nakamoto coefficient).

/// Nearest-rank percentile (`p` in 0..=100) of `values`; None when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Gini coefficient of non-negative amounts: 0 = perfectly equal, (n-1)/n = one holder has everything.
/// Zero holders count (an idle honest node is part of the inequality).
pub fn gini(amounts: &[f64]) -> f64 {
    let n = amounts.len();
    let total: f64 = amounts.iter().sum();
    if n == 0 || total <= 0.0 {
        return 0.0;
    }
    let mut sorted = amounts.to_vec();
    sorted.sort_by(f64::total_cmp);
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    2.0 * weighted / (n as f64 * total) - (n as f64 + 1.0) / n as f64
}

/// Herfindahl-Hirschman index: sum of squared shares, in 0..=1 (> 0.25 is concentrated).
pub fn hhi(amounts: &[f64]) -> f64 {
    let total: f64 = amounts.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    amounts.iter().map(|x| (x / total).powi(2)).sum()
}

/// Nakamoto coefficient: the fewest holders who together hold at least `threshold` (e.g. 0.33, 0.5) of the total.
/// 0 when nothing was paid.
pub fn nakamoto(amounts: &[f64], threshold: f64) -> usize {
    let total: f64 = amounts.iter().sum();
    if total <= 0.0 {
        return 0;
    }
    let mut sorted = amounts.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut acc = 0.0;
    for (i, x) in sorted.iter().enumerate() {
        acc += x;
        if acc >= threshold * total - 1e-9 * total {
            return i + 1;
        }
    }
    sorted.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
    }

    #[test]
    fn gini_known_vectors() {
        assert!(gini(&[5.0, 5.0, 5.0, 5.0]).abs() < 1e-12);
        // One of four holds everything: (n-1)/n.
        assert!((gini(&[0.0, 0.0, 0.0, 8.0]) - 0.75).abs() < 1e-12);
        // 1,2,3,4: G = 2*(1+4+9+16)/(4*10) - 5/4 = 1.5 - 1.25 = 0.25.
        assert!((gini(&[4.0, 1.0, 3.0, 2.0]) - 0.25).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[0.0, 0.0]), 0.0);
    }

    #[test]
    fn hhi_known_vectors() {
        assert!((hhi(&[1.0, 1.0, 1.0, 1.0]) - 0.25).abs() < 1e-12);
        assert!((hhi(&[10.0]) - 1.0).abs() < 1e-12);
        // Shares 0.5, 0.3, 0.2: 0.25 + 0.09 + 0.04.
        assert!((hhi(&[50.0, 30.0, 20.0]) - 0.38).abs() < 1e-12);
        assert_eq!(hhi(&[0.0]), 0.0);
    }

    #[test]
    fn nakamoto_known_vectors() {
        let v = [50.0, 30.0, 20.0];
        assert_eq!(nakamoto(&v, 0.33), 1);
        assert_eq!(nakamoto(&v, 0.5), 1);
        assert_eq!(nakamoto(&v, 0.51), 2);
        let equal = [1.0; 10];
        assert_eq!(nakamoto(&equal, 0.33), 4);
        assert_eq!(nakamoto(&equal, 0.5), 5);
        assert_eq!(nakamoto(&[0.0, 0.0], 0.5), 0);
    }
}
