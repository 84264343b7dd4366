//! The loss curve as a PNG (no plotting dependency: an RGB raster, lines
//! and labels drawn by hand, deflated with `flate2`).

use std::path::Path;

use crate::error::io_error;
use crate::trainer::StepMetrics;
use crate::Result;

const WIDTH: usize = 720;
const HEIGHT: usize = 400;
const MARGIN: usize = 56;
/// Label pixels per font pixel.
const SCALE: i64 = 2;

struct Canvas {
    pixels: Vec<[u8; 3]>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            pixels: vec![[255, 255, 255]; WIDTH * HEIGHT],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if (0..WIDTH as i64).contains(&x) && (0..HEIGHT as i64).contains(&y) {
            self.pixels[y as usize * WIDTH + x as usize] = color;
        }
    }

    /// A line two pixels thick (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), color: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, color);
            self.set(x, y + 1, color);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)`.
    fn text(&mut self, x: i64, y: i64, text: &str, color: [u8; 3]) {
        for (i, c) in text.chars().enumerate() {
            let left = x + i as i64 * 4 * SCALE;
            for (row, bits) in crate::glyphs::glyph(c).iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(left + col * SCALE + dx, y + row as i64 * SCALE + dy, color);
                        }
                    }
                }
            }
        }
    }

    /// Width in pixels of `text`.
    fn text_width(text: &str) -> i64 {
        text.chars().count() as i64 * 4 * SCALE - SCALE
    }

    fn dot(&mut self, (x, y): (i64, i64), color: [u8; 3]) {
        for dx in -3..=3 {
            for dy in -3..=3 {
                if dx * dx + dy * dy <= 9 {
                    self.set(x + dx, y + dy, color);
                }
            }
        }
    }
}

/// Draws training loss (blue line) and held-out loss (red dots) against
/// the step, with a light grid of quarter lines, and writes `path`.
pub fn write_loss_curve(steps: &[StepMetrics], path: &Path) -> Result<()> {
    let mut c = Canvas::new();
    let losses: Vec<f64> = steps
        .iter()
        .flat_map(|m| std::iter::once(m.loss).chain(m.eval_loss))
        .filter(|l| l.is_finite())
        .collect();
    let lo = losses
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let hi = losses.iter().copied().fold(0.0f64, f64::max).max(1e-9);
    let last = steps.last().map_or(1, |m| m.step.max(1));
    let (w, h) = ((WIDTH - 2 * MARGIN) as f64, (HEIGHT - 2 * MARGIN) as f64);
    let at = |step: u64, loss: f64| -> (i64, i64) {
        let x = MARGIN as f64 + w * step as f64 / last as f64;
        let y = MARGIN as f64 + h * (1.0 - (loss - lo) / (hi - lo));
        (x.round() as i64, y.round() as i64)
    };
    let grid = [225, 225, 225];
    let ink = [40, 40, 40];
    for q in 0..=4 {
        let y = (MARGIN as f64 + h * q as f64 / 4.0) as i64;
        c.line((MARGIN as i64, y), ((WIDTH - MARGIN) as i64, y), grid);
        let label = tick(hi - (hi - lo) * q as f64 / 4.0);
        c.text(
            MARGIN as i64 - 8 - Canvas::text_width(&label),
            y - 5,
            &label,
            ink,
        );
        let x = (MARGIN as f64 + w * q as f64 / 4.0) as i64;
        c.line((x, MARGIN as i64), (x, (HEIGHT - MARGIN) as i64), grid);
        let step = ((last as f64) * q as f64 / 4.0).round() as u64;
        let label = step.to_string();
        c.text(
            x - Canvas::text_width(&label) / 2,
            (HEIGHT - MARGIN) as i64 + 10,
            &label,
            ink,
        );
    }
    c.text(
        (WIDTH - MARGIN) as i64 - Canvas::text_width("step"),
        (HEIGHT - MARGIN) as i64 + 30,
        "step",
        ink,
    );
    c.text(MARGIN as i64, 16, "loss (line: train, dots: eval)", ink);
    let axis = [60, 60, 60];
    let bottom = (HEIGHT - MARGIN) as i64;
    c.line(
        (MARGIN as i64, MARGIN as i64),
        (MARGIN as i64, bottom),
        axis,
    );
    c.line(
        (MARGIN as i64, bottom),
        ((WIDTH - MARGIN) as i64, bottom),
        axis,
    );
    let blue = [31, 119, 180];
    for pair in steps.windows(2) {
        c.line(
            at(pair[0].step, pair[0].loss),
            at(pair[1].step, pair[1].loss),
            blue,
        );
    }
    for m in steps {
        if let Some(e) = m.eval_loss.filter(|e| e.is_finite()) {
            c.dot(at(m.step, e), [214, 39, 40]);
        }
    }
    let png = encode_png(&c.pixels, WIDTH, HEIGHT);
    std::fs::write(path, png).map_err(io_error(path))
}

/// A tick label: few digits, scientific below 0.01.
fn tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() < 0.01 {
        format!("{v:.0e}")
    } else if v.abs() < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

/// An 8-bit RGB PNG, zlib-compressed.
fn encode_png(pixels: &[[u8; 3]], width: usize, height: usize) -> Vec<u8> {
    use std::io::Write;
    let mut raw = Vec::with_capacity(height * (1 + width * 3));
    for row in pixels.chunks(width) {
        raw.push(0); // filter: none
        raw.extend(row.iter().flatten());
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let zlib: Vec<u8> = encoder
        .write_all(&raw)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend((width as u32).to_be_bytes());
    ihdr.extend((height as u32).to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2.5), "2.50");
        assert_eq!(tick(0.005), "5e-3");
        assert_eq!(tick(123.4), "123");
    }
}
