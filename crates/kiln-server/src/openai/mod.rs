//! OpenAI's wire format: request bodies (parsed with OpenAI-style errors),
//! their conversion to kiln's generation parameters, and response bodies.

pub mod params;
pub mod request;
pub mod response;

/// Seconds since the Unix epoch (OpenAI's `created`).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh id with OpenAI's prefix style (`chatcmpl-…`, `cmpl-…`).
pub fn new_id(prefix: &str) -> String {
    let mut rng = kiln_sampling::Rng::from_entropy();
    format!(
        "{prefix}-{:016x}{:08x}",
        rng.next_u64(),
        rng.next_u64() as u32
    )
}
