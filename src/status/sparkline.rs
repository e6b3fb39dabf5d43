//! A queue's depth over the backlog detector's window as a small inline SVG polyline: x is
//! time (the samples are unevenly spaced after thinning), y is `messages_ready` from 0 (the
//! bottom) to the window's maximum (the top).

/// Width of the drawing, in CSS pixels.
pub const WIDTH: f64 = 120.0;
/// Height of the drawing, in CSS pixels.
pub const HEIGHT: f64 = 24.0;
/// Space kept around the line so its stroke is not clipped.
const PAD: f64 = 2.0;

/// What the template needs to draw one sparkline.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparkline {
    /// The polyline's `points` attribute: `x,y` pairs separated by spaces.
    pub points: String,
    /// The last point's x, for the end marker.
    pub last_x: String,
    /// The last point's y.
    pub last_y: String,
    /// The tooltip: `ready 0 → 1234 (max 1500) over 4m`.
    pub title: String,
    /// Whether depth rose from the first sample to the last (drawn in the warning colour).
    pub rising: bool,
}

/// The sparkline of `depth` (`(at, messages_ready)` oldest first); `None` with fewer than two
/// samples.
pub fn draw(depth: &[(f64, u64)]) -> Option<Sparkline> {
    let (&(t0, first), &(t1, last)) = (depth.first()?, depth.last()?);
    if depth.len() < 2 {
        return None;
    }
    let span = (t1 - t0).max(f64::EPSILON);
    let max = depth.iter().map(|&(_, d)| d).max().unwrap_or(0).max(1) as f64;
    let (w, h) = (WIDTH - 2.0 * PAD, HEIGHT - 2.0 * PAD);
    let point = |(at, d): (f64, u64)| {
        let x = PAD + (at - t0) / span * w;
        let y = PAD + h - d as f64 / max * h;
        (format!("{x:.1}"), format!("{y:.1}"))
    };
    let mut points = String::with_capacity(depth.len() * 10);
    for &sample in depth {
        let (x, y) = point(sample);
        if !points.is_empty() {
            points.push(' ');
        }
        points.push_str(&x);
        points.push(',');
        points.push_str(&y);
    }
    let (last_x, last_y) = point((t1, last));
    Some(Sparkline {
        points,
        last_x,
        last_y,
        title: format!(
            "ready {first} → {last} (max {}) over {}",
            max as u64,
            crate::alerting::backlog::human(t1 - t0)
        ),
        rising: last > first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_time_and_depth_into_the_box() {
        let s = draw(&[(100.0, 0), (130.0, 50), (160.0, 100)]).unwrap();
        assert_eq!(s.points, "2.0,22.0 60.0,12.0 118.0,2.0");
        assert_eq!((s.last_x.as_str(), s.last_y.as_str()), ("118.0", "2.0"));
        assert!(s.rising);
        assert_eq!(s.title, "ready 0 → 100 (max 100) over 1m");
    }

    #[test]
    fn flat_and_short_windows() {
        assert!(draw(&[]).is_none());
        assert!(draw(&[(1.0, 5)]).is_none());
        let flat = draw(&[(0.0, 0), (10.0, 0)]).unwrap();
        assert_eq!(flat.points, "2.0,22.0 118.0,22.0");
        assert!(!flat.rising);
    }
}
