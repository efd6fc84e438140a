//! The memory sizes the SAM template gives each function (`infra/template.yaml`), read rather than
//! copied so the cost figures follow the template. A small line-oriented reader for the template's own
//! layout (two-space indents, `Globals.Function.MemorySize`, per-function `Properties.MemorySize` and
//! `Metadata.BuildProperties.Binary`), not a general YAML parser.

use std::collections::BTreeMap;

/// Memory per function binary, in MB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// `Globals.Function.MemorySize` (AWS's own default, 128 MB, when the template has none).
    pub default_mb: u32,
    /// Binary name → its function's memory (the default when the function sets none).
    pub by_binary: BTreeMap<String, u32>,
}

impl Memory {
    /// The memory of `binary`'s function, or the template default for a binary it does not declare.
    pub fn of(&self, binary: &str) -> u32 {
        self.by_binary.get(binary).copied().unwrap_or(self.default_mb)
    }
}

/// How many Secrets Manager secrets the template creates.
pub fn secrets(text: &str) -> usize {
    text.lines().filter(|l| l.trim() == "Type: AWS::SecretsManager::Secret").count()
}

/// AWS Lambda's default when a template sets no memory size.
const AWS_DEFAULT_MB: u32 = 128;

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
    let v = rest.split('#').next().unwrap_or_default().trim();
    (!v.is_empty()).then(|| v.trim_matches('"').trim_matches('\''))
}

/// Reads the template text.
pub fn parse(text: &str) -> Memory {
    let mut default_mb = None;
    let mut section = "";
    let mut in_globals_function = false;
    let mut current: Option<Resource> = None;
    let mut declared: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = indent(line);
        if depth == 0 {
            finish(&mut current, &mut declared);
            section = trimmed.trim_end_matches(':');
            in_globals_function = false;
            continue;
        }
        match section {
            "Globals" => {
                if depth == 2 {
                    in_globals_function = trimmed.starts_with("Function:");
                } else if in_globals_function
                    && depth == 4
                    && let Some(v) = value(line, "MemorySize")
                {
                    default_mb = v.parse().ok();
                }
            }
            "Resources" => {
                if depth == 2 {
                    finish(&mut current, &mut declared);
                    current = Some(Resource::default());
                } else if let Some(Resource { binary, memory, is_function }) = current.as_mut() {
                    // The resource's own Type (events and policies have theirs, deeper).
                    if depth == 4
                        && let Some(v) = value(line, "Type")
                    {
                        *is_function = v == "AWS::Serverless::Function";
                    } else if let Some(v) = value(line, "Binary") {
                        *binary = Some(v.to_owned());
                    } else if depth == 6
                        && let Some(v) = value(line, "MemorySize")
                    {
                        *memory = v.parse().ok();
                    }
                }
            }
            _ => {}
        }
    }
    finish(&mut current, &mut declared);
    let default_mb = default_mb.unwrap_or(AWS_DEFAULT_MB);
    let by_binary = declared.into_iter().map(|(binary, memory)| (binary, memory.unwrap_or(default_mb))).collect();
    Memory { default_mb, by_binary }
}

/// The resource being read.
#[derive(Default)]
struct Resource {
    binary: Option<String>,
    memory: Option<u32>,
    is_function: bool,
}

/// Files the resource just read if it is a function with a binary.
fn finish(current: &mut Option<Resource>, declared: &mut BTreeMap<String, Option<u32>>) {
    if let Some(Resource { binary: Some(binary), memory, is_function: true }) = current.take() {
        declared.insert(binary, memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Globals:
  Function:
    Runtime: provided.al2023
    MemorySize: 256 # MB
    Timeout: 10

Resources:
  JobQueue:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
  ReceiverFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: basecamp-webhook
    Properties:
      CodeUri: ..
  MapperFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: "sync-mapper"
    Properties:
      MemorySize: 512
      Timeout: 60
      Events:
        Jobs:
          Type: SQS

Outputs:
  Url:
    Value: x
"#;

    #[test]
    fn functions_get_their_own_memory_size_or_the_global_one() {
        let m = parse(TEMPLATE);
        assert_eq!(m.default_mb, 256);
        assert_eq!(m.of("basecamp-webhook"), 256);
        assert_eq!(m.of("sync-mapper"), 512);
        assert_eq!(m.by_binary.len(), 2);
        assert_eq!(m.of("not-in-the-template"), 256);
    }

    #[test]
    fn a_template_without_memory_sizes_uses_the_aws_default() {
        let m = parse(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: f\n",
        );
        assert_eq!(m.of("f"), 128);
    }

    #[test]
    fn the_projects_template_declares_every_function_binary() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml"))
            .unwrap_or_else(|e| panic!("infra/template.yaml: {e}"));
        let m = parse(&text);
        for binary in ["basecamp-webhook", "jira-webhook", "bitbucket-webhook", "sync-mapper", "reconciler"] {
            assert!(m.by_binary.contains_key(binary), "{binary} in {m:?}");
        }
    }
}
