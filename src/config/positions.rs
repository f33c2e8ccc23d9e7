//! Where each field of a YAML document sits, by field path (`app.canary.steps[1].setWeight`).
//!
//! Serde errors carry a location, but semantic checks run on the typed value, which has none.
//! This index is built from the parser's events once per file so every semantic error can name
//! the line and column of the field it is about.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// 1-based line and column.
pub type Pos = (u64, u64);

/// Field path → position of the field (the key for map entries, the item for list entries).
#[derive(Clone, Debug, Default)]
pub struct Positions {
    map: HashMap<String, Pos>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        path: String,
        index: usize,
    },
    /// A complex mapping key; its contents have no field path.
    Opaque,
}

impl Positions {
    /// Indexes `text`. A document that does not parse gives whatever was indexed before the
    /// error: the deserializer reports the syntax error itself, with its own location.
    pub fn index(text: &str) -> Self {
        let mut map = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut root_seen = false;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = (span.start.line() as u64, span.start.col() as u64 + 1);
            let starts_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::MappingStart(..)
                    | Event::SequenceStart(..)
                    | Event::Alias(_)
            );
            if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
                stack.pop();
                continue;
            }
            if !starts_node {
                continue;
            }
            // The path of this node, or None when it is a key (or inside an opaque key).
            let path: Option<String> = match stack.last_mut() {
                None => {
                    if root_seen {
                        // A second document: its positions would clash with the first's.
                        break;
                    }
                    root_seen = true;
                    map.insert(String::new(), pos);
                    Some(String::new())
                }
                Some(Frame::Opaque) => None,
                Some(Frame::Seq { path, index }) => {
                    let p = format!("{path}[{index}]");
                    *index += 1;
                    map.entry(p.clone()).or_insert(pos);
                    Some(p)
                }
                Some(Frame::Map {
                    path,
                    key,
                    expecting_key,
                }) => {
                    if *expecting_key {
                        *expecting_key = false;
                        match &event {
                            Event::Scalar(k, ..) => {
                                let p = join(path, k);
                                map.entry(p).or_insert(pos);
                                *key = Some(k.to_string());
                            }
                            _ => *key = None,
                        }
                        None
                    } else {
                        *expecting_key = true;
                        let p = key.take().map(|k| join(path, &k));
                        if let Some(p) = &p {
                            map.entry(p.clone()).or_insert(pos);
                        }
                        p
                    }
                }
            };
            match event {
                Event::MappingStart(..) => stack.push(match path {
                    Some(path) => Frame::Map {
                        path,
                        key: None,
                        expecting_key: true,
                    },
                    None => Frame::Opaque,
                }),
                Event::SequenceStart(..) => stack.push(match path {
                    Some(path) => Frame::Seq { path, index: 0 },
                    None => Frame::Opaque,
                }),
                _ => {}
            }
        }
        Positions { map }
    }

    /// The position of `path`, or of its nearest ancestor that appears in the file (a field
    /// left to its default has no position of its own).
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return Some(*pos);
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => return self.map.get("").copied(),
            }
        }
    }
}

impl Positions {
    /// The field whose key stands on the line of `pos`, at or before its column (for errors the
    /// parser places at a value by position only, such as an alias to no anchor).
    pub fn on_line(&self, pos: Pos) -> Option<&str> {
        self.map
            .iter()
            .filter(|(path, at)| at.0 == pos.0 && at.1 <= pos.1 && !path.is_empty())
            .max_by_key(|(_, at)| at.1)
            .map(|(path, _)| path.as_str())
    }

    /// The path of the field named `key` that a repeated `key` at `pos` duplicates: the nearest
    /// earlier key of that name in the same column (the parser places a duplicate key by
    /// position only).
    pub fn duplicated(&self, pos: Pos, key: &str) -> Option<&str> {
        self.map
            .iter()
            .filter(|(path, at)| {
                at.1 == pos.1
                    && at.0 < pos.0
                    && (path.as_str() == key || path.ends_with(&format!(".{key}")))
            })
            .max_by_key(|(_, at)| at.0)
            .map(|(path, _)| path.as_str())
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: v
app:
  name: cats
  canary:
    steps:
    - setWeight: 20
    - pause: {}
    - setWeight: 0
list: [a, {b: c}]
";

    #[test]
    fn keys_and_items_have_positions() {
        let p = Positions::index(DOC);
        assert_eq!(p.find("apiVersion"), Some((1, 1)));
        assert_eq!(p.find("app.name"), Some((3, 3)));
        assert_eq!(p.find("app.canary.steps[2]"), Some((8, 7)));
        assert_eq!(p.find("app.canary.steps[2].setWeight"), Some((8, 7)));
        assert_eq!(p.find("app.canary.steps[1].pause"), Some((7, 7)));
        assert_eq!(p.find("list[1].b"), Some((9, 12)));
    }

    #[test]
    fn missing_fields_fall_back_to_the_nearest_ancestor() {
        let p = Positions::index(DOC);
        assert_eq!(p.find("app.canary.steps[2].pause.duration"), Some((8, 7)));
        assert_eq!(p.find("app.replicas"), Some((2, 1)));
        assert_eq!(p.find("tls.issuer"), Some((1, 1)));
    }

    #[test]
    fn broken_yaml_indexes_what_came_before() {
        let p = Positions::index("a: 1\nb: [\n");
        assert_eq!(p.find("a"), Some((1, 1)));
    }
}
