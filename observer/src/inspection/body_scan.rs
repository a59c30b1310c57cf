//! A JSON body read in pieces for the two values gatewatch keeps: the
//! `model` a request names and the `usage` a response reports. Nothing else
//! is kept: bytes are looked at once and dropped, so a body of any size
//! costs a few hundred bytes of state.
//!
//! The scanner only tracks structure (strings, nesting, keys near the top);
//! the small values it keeps are then parsed by `serde_json`. Where the
//! values sit, by API:
//! - `model` at the top (OpenAI, Anthropic, Azure requests), or under
//!   `response` / `message` (Responses and Anthropic stream events);
//! - `usage` at the top (OpenAI chat, embeddings, Anthropic
//!   `message_delta`), under `response` (Responses `response.completed`) or
//!   `message` (Anthropic `message_start`); `usageMetadata` (Gemini).

/// Longest key compared (the interesting ones are shorter).
const KEY_MAX: usize = 16;
/// Longest `model` value kept; longer names are not model names.
const MODEL_MAX: usize = 128;
/// Largest `usage` object read (real ones are a few hundred bytes).
const USAGE_MAX: usize = 4096;
/// Nesting tracked exactly; deeper documents are still followed by count.
const DEPTH_BITS: u32 = 64;

/// Tokens a response reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
}

impl Usage {
    /// `later` over `self` where it says something (stream events report
    /// input and output in different events).
    pub fn merge(self, later: Usage) -> Usage {
        Usage {
            input: later.input.or(self.input),
            output: later.output.or(self.output),
        }
    }

    fn from_object(bytes: &[u8]) -> Option<Usage> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes).ok()?;
        let get = |keys: &[&str]| keys.iter().find_map(|k| map.get(*k)?.as_u64());
        let usage = Usage {
            input: get(&["prompt_tokens", "input_tokens", "promptTokenCount"]),
            output: get(&["completion_tokens", "output_tokens", "candidatesTokenCount"]),
        };
        (usage != Usage::default()).then_some(usage)
    }
}

/// What is being read at the scanner's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Str {
    Key,
    Model,
    Other,
}

#[derive(Default)]
pub struct BodyScan {
    depth: u32,
    /// Bit d set: the container at depth d+1 is an object.
    objects: u64,
    /// In an object, before its next key's colon.
    expect_key: bool,
    in_str: Option<Str>,
    escape: bool,
    key: Vec<u8>,
    /// The keys leading to the current position at depths 1 and 2.
    path: [Option<Key>; 2],
    model_buf: Vec<u8>,
    /// Depth at which a `usage` object being copied started.
    usage_at: Option<u32>,
    usage_buf: Vec<u8>,
    usage_cut: bool,
    pub model: Option<String>,
    pub usage: Option<Usage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Model,
    Usage,
    Nest,
    Other,
}

impl Key {
    fn of(name: &[u8]) -> Key {
        match name {
            b"model" => Key::Model,
            b"usage" | b"usageMetadata" => Key::Usage,
            b"response" | b"message" => Key::Nest,
            _ => Key::Other,
        }
    }
}

impl BodyScan {
    pub fn new() -> Self {
        Self::default()
    }

    /// What the value that starts now is: a model name, a usage object,
    /// or nothing of interest.
    fn target(&self) -> Option<Key> {
        match (self.depth, self.path) {
            (1, [Some(k), _]) => Some(k),
            (2, [Some(Key::Nest), Some(k)]) if k != Key::Nest => Some(k),
            _ => None,
        }
    }

    fn in_object(&self) -> bool {
        self.depth >= 1 && self.depth <= DEPTH_BITS && self.objects & (1 << (self.depth - 1)) != 0
    }

    /// Reads the next piece of the body.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if self.usage_at.is_some() {
            if self.usage_buf.len() < USAGE_MAX {
                self.usage_buf.push(b);
            } else {
                self.usage_cut = true;
            }
        }
        if let Some(kind) = self.in_str {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_str = None;
                self.end_string(kind);
                return;
            }
            match kind {
                Str::Key if self.key.len() <= KEY_MAX => self.key.push(b),
                Str::Model if self.model_buf.len() <= MODEL_MAX => self.model_buf.push(b),
                _ => {}
            }
            return;
        }
        match b {
            b'"' => {
                let kind = if self.expect_key && self.in_object() {
                    self.key.clear();
                    Str::Key
                } else if self.target() == Some(Key::Model) && self.usage_at.is_none() {
                    self.model_buf.clear();
                    self.model_buf.push(b'"');
                    Str::Model
                } else {
                    Str::Other
                };
                self.in_str = Some(kind);
            }
            b'{' | b'[' => {
                if b == b'{' && self.target() == Some(Key::Usage) && self.usage_at.is_none() {
                    self.usage_at = Some(self.depth);
                    self.usage_buf.clear();
                    self.usage_buf.push(b'{');
                    self.usage_cut = false;
                }
                self.depth = self.depth.saturating_add(1);
                if self.depth <= DEPTH_BITS {
                    let bit = 1u64 << (self.depth - 1);
                    if b == b'{' {
                        self.objects |= bit;
                    } else {
                        self.objects &= !bit;
                    }
                }
                self.expect_key = b == b'{';
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if let Some(at) = self.usage_at
                    && self.depth == at
                {
                    self.usage_at = None;
                    if !self.usage_cut
                        && let Some(u) = Usage::from_object(&self.usage_buf)
                    {
                        self.usage = Some(self.usage.unwrap_or_default().merge(u));
                    }
                    self.usage_buf = Vec::new();
                }
                // Back in the parent: the key of the closed value stays
                // until the next comma; keys inside it are gone.
                if (self.depth as usize) < self.path.len() {
                    self.path[self.depth as usize] = None;
                }
                self.expect_key = false;
            }
            b':' => self.expect_key = false,
            b',' => {
                self.expect_key = self.in_object();
                if let Some(slot) = self
                    .depth
                    .checked_sub(1)
                    .and_then(|d| self.path.get_mut(d as usize))
                {
                    *slot = None;
                }
            }
            _ => {}
        }
    }

    fn end_string(&mut self, kind: Str) {
        match kind {
            Str::Key => {
                let key = if self.key.len() > KEY_MAX {
                    Key::Other
                } else {
                    Key::of(&self.key)
                };
                if let Some(slot) = self
                    .depth
                    .checked_sub(1)
                    .and_then(|d| self.path.get_mut(d as usize))
                {
                    *slot = Some(key);
                }
            }
            Str::Model => {
                if self.model_buf.len() <= MODEL_MAX {
                    self.model_buf.push(b'"');
                    if let Ok(name) = serde_json::from_slice::<String>(&self.model_buf)
                        && !name.is_empty()
                    {
                        self.model = Some(name);
                    }
                }
                self.model_buf = Vec::new();
            }
            Str::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(body: &[u8], piece: usize) -> BodyScan {
        let mut s = BodyScan::new();
        for chunk in body.chunks(piece) {
            s.push(chunk);
        }
        s
    }

    #[test]
    fn finds_the_model_after_the_messages_in_any_piece_size() {
        let body = br#"{"messages":[{"role":"user","content":"say \"model\": x {"}],"model":"gpt-4o","stream":false}"#;
        for piece in [1, 2, 7, 1000] {
            let s = scan_in_pieces(body, piece);
            assert_eq!(s.model.as_deref(), Some("gpt-4o"), "piece {piece}");
            assert_eq!(s.usage, None);
        }
    }

    #[test]
    fn reads_openai_usage_and_ignores_nested_lookalikes() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi","usage":{"prompt_tokens":999}}}],"model":"m","usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0}}}"#;
        let s = scan_in_pieces(body, 3);
        assert_eq!(
            s.usage,
            Some(Usage {
                input: Some(11),
                output: Some(7)
            })
        );
    }

    #[test]
    fn reads_usage_under_response_and_message_and_gemini_metadata() {
        let responses = br#"{"type":"response.completed","response":{"model":"gpt-4.1","usage":{"input_tokens":5,"output_tokens":9}}}"#;
        let s = scan_in_pieces(responses, 4);
        assert_eq!(s.model.as_deref(), Some("gpt-4.1"));
        assert_eq!(
            s.usage.map(|u| (u.input, u.output)),
            Some((Some(5), Some(9)))
        );
        let gemini =
            br#"{"candidates":[],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}"#;
        assert_eq!(
            scan_in_pieces(gemini, 5).usage,
            Some(Usage {
                input: Some(3),
                output: Some(4)
            })
        );
    }

    #[test]
    fn embeddings_usage_has_input_only_and_null_usage_is_nothing() {
        let s = scan_in_pieces(
            br#"{"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}"#,
            2,
        );
        assert_eq!(
            s.usage,
            Some(Usage {
                input: Some(8),
                output: None
            })
        );
        assert_eq!(
            scan_in_pieces(br#"{"usage":null,"model":"x"}"#, 1).usage,
            None
        );
    }

    #[test]
    fn garbage_and_truncated_bodies_give_nothing_and_never_panic() {
        for body in [
            &b""[..],
            b"}}}]]]",
            b"{\"model\":",
            b"{\"model\":\"unterminated",
            b"\"model\":\"x\"",
            b"[{\"model\":\"in-array\"}]",
            b"{\"usage\":{\"prompt_tokens\":",
        ] {
            let s = scan_in_pieces(body, 1);
            assert_eq!((s.model, s.usage), (None, None), "{body:?}");
        }
    }

    #[test]
    fn an_oversized_usage_object_is_dropped_not_misread() {
        let mut body = br#"{"usage":{"prompt_tokens":1,"pad":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', USAGE_MAX));
        body.extend(br#""}}"#);
        assert_eq!(scan_in_pieces(&body, 64).usage, None);
    }
}
