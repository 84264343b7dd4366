//! Stop strings that may span token boundaries. Text is released only when it
//! can no longer be the start of a stop string, so streamed text never
//! contains (part of) a stop string that later completes.

/// Watches generated text for stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released.
    pending: String,
}

/// What the matcher says after new text arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopStatus {
    /// Keep going; this text is safe to release.
    Continue(String),
    /// A stop string matched; this text precedes it and generation ends.
    Stopped(String),
}

impl StopMatcher {
    /// A matcher for `stops` (none: every text is released at once).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    /// Feeds new text.
    pub fn push(&mut self, text: &str) -> StopStatus {
        self.pending.push_str(text);
        let first_match = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_match {
            let before = self.pending[..at].to_string();
            self.pending.clear();
            return StopStatus::Stopped(before);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let mut hold = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if self.pending.ends_with(&s[..i]) {
                    hold = hold.max(i);
                }
            }
        }
        let cut = self.pending.len() - hold;
        let released = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopStatus::Continue(released)
    }

    /// Releases what is still held back (generation ended for another reason).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_across_pieces_is_cut_and_never_released() {
        let mut m = StopMatcher::new(&["\nUser:".to_string()]);
        assert_eq!(m.push("Hello"), StopStatus::Continue("Hello".into()));
        assert_eq!(m.push(" there\nUs"), StopStatus::Continue(" there".into()));
        assert_eq!(m.push("er: hi"), StopStatus::Stopped(String::new()));
    }

    #[test]
    fn false_alarm_is_released_later() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("the EN"), StopStatus::Continue("the ".into()));
        assert_eq!(m.push("D"), StopStatus::Stopped("".into()));
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("the EN"), StopStatus::Continue("the ".into()));
        assert_eq!(m.push("ough"), StopStatus::Continue("ENough".into()));
        assert_eq!(m.push("E"), StopStatus::Continue("".into()));
        assert_eq!(m.finish(), "E");
    }

    #[test]
    fn earliest_stop_wins_and_multibyte_is_safe() {
        let mut m = StopMatcher::new(&["b".to_string(), "안녕".to_string()]);
        assert_eq!(m.push("a안"), StopStatus::Continue("a".into()));
        assert_eq!(m.push("x b 안녕"), StopStatus::Stopped("안x ".into()));
    }
}
