//! SVG charts (plotters, SVG backend only: no fonts or system libraries needed).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::error::SimError;
use crate::report::Report;
use crate::scenario::{value_text, ChartSpec};

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Series name -> points (x, y) sorted by x, from the runs that match the chart's filter.
pub fn series(report: &Report, spec: &ChartSpec) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    'runs: for run in &report.runs {
        for (k, v) in &spec.filter {
            if run.spec.labels.get(k) != Some(&value_text(v)) {
                continue 'runs;
            }
        }
        let Some(x) = run
            .spec
            .labels
            .get(&spec.x)
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let Some(y) = run.metrics.get(&spec.y) else {
            continue;
        };
        let name: Vec<String> = spec
            .series
            .iter()
            .map(|k| {
                let v = run.spec.labels.get(k).cloned().unwrap_or_default();
                if k == "variant" {
                    v
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        out.entry(name.join(" ")).or_default().push((x, y));
    }
    for points in out.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn axis(v: f64, log: bool) -> f64 {
    if log {
        v.max(1e-9).log10()
    } else {
        v
    }
}

fn tick(v: f64, log: bool) -> String {
    let x = if log { 10f64.powf(v) } else { v };
    if x.abs() >= 100.0 || x == x.round() {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// Renders one chart to an SVG string.
pub fn render(report: &Report, spec: &ChartSpec) -> Result<String, String> {
    let data = series(report, spec);
    let all: Vec<(f64, f64)> = data.values().flatten().copied().collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in &all {
            let (x, y) = (axis(x, spec.log_x), axis(y, spec.log_y));
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if all.is_empty() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let xpad = ((x1 - x0) * 0.05).max(0.5);
        let ypad = ((y1 - y0) * 0.08).max(if spec.log_y { 0.05 } else { 1.0 });
        let y_lo = if spec.log_y { y0 - ypad } else { 0.0 };
        let title = if spec.title.is_empty() {
            format!("{} vs {}", spec.y, spec.x)
        } else {
            spec.title.clone()
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d((x0 - xpad)..(x1 + xpad), y_lo..(y1 + ypad))
            .map_err(|e| e.to_string())?;
        let x_desc = if spec.log_x {
            format!("{} (log scale)", spec.x)
        } else {
            spec.x.clone()
        };
        let y_desc = if spec.log_y {
            format!("{} (log scale)", spec.y)
        } else {
            spec.y.clone()
        };
        let (lx, ly) = (spec.log_x, spec.log_y);
        let xf = move |v: &f64| tick(*v, lx);
        let yf = move |v: &f64| tick(*v, ly);
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, points)) in data.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64)> = points
                .iter()
                .map(|&(x, y)| (axis(x, lx), axis(y, ly)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(if name.is_empty() {
                    spec.y.clone()
                } else {
                    name.clone()
                })
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes every chart of the scenario into `dir`.
pub fn write_all(
    report: &Report,
    charts: &[ChartSpec],
    dir: &Path,
) -> Result<Vec<std::path::PathBuf>, SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for spec in charts {
        let path = dir.join(&spec.file);
        let svg = render(report, spec).map_err(|message| SimError::Chart {
            path: path.clone(),
            message,
        })?;
        std::fs::write(&path, svg).map_err(|source| SimError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}
