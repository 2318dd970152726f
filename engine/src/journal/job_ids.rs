//! Short job ids: a job named by the start of its id, as git names a commit.
//!
//! A job id is a UUID in its canonical form (`0197a3c4-5e6f-7a8b-9c0d-…`).
//! A prefix of it names the job when no other job's id starts the same way.
//! Hyphens may be left out and case does not matter (`0197A3C45E` is
//! `0197a3c4-5e`). A prefix shorter than [`MIN_PREFIX_LEN`] hex digits is
//! refused: it would name a job only by luck.
//!
//! Ids are UUIDv7, whose first 12 hex digits are the creation time in
//! milliseconds, so the ids of jobs created close together share a long
//! start: they take more characters to tell apart than random ids would.
//!
//! Since ids sort as text, the jobs a prefix names are one contiguous run:
//! those at or above the prefix and below the next prefix of the same length
//! ([`JobIdPrefix::upper_bound`]). The journal reads that run through the
//! primary key, and a client of the API reads it as the first page of
//! `GET /v1/jobs?all=true&cursor=<upper bound>` (`cursor` lists ids below
//! it, newest first).

use std::fmt;
use std::str::FromStr;

use rusqlite::params;

use super::{JOB_COLUMNS, JobId, JobRecord, Journal, JournalError, decode_job, raw_job};

/// The fewest hex digits a prefix must have.
pub const MIN_PREFIX_LEN: usize = 4;

/// How many candidates an ambiguity lists.
pub const MAX_CANDIDATES: usize = 10;

/// Hex digits of a UUID.
const HEX_LEN: usize = 32;

/// Where the canonical form has its hyphens, counted in hex digits before it.
const HYPHENS_AFTER: [usize; 4] = [8, 12, 16, 20];

/// The start of a job id, checked and in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIdPrefix {
    /// Lowercase hex digits, without hyphens.
    hex: String,
}

/// Why a job id (or a prefix of one) names no single job.
#[derive(Debug, thiserror::Error)]
pub enum JobIdError {
    /// Not hex digits (and hyphens).
    #[error("`{0}` is not a job id or the start of one (hex digits, hyphens optional)")]
    Invalid(String),
    /// Fewer than [`MIN_PREFIX_LEN`] hex digits.
    #[error(
        "`{0}` is too short to name a job: give at least {MIN_PREFIX_LEN} characters of its id"
    )]
    TooShort(String),
    /// No job's id starts so.
    #[error("no job with id {0}")]
    NotFound(String),
    /// Several jobs' ids start so.
    #[error(
        "`{prefix}` is the start of more than one job id; give more characters:\n{}{}",
        candidates.join("\n"),
        if *more { "\n  …" } else { "" }
    )]
    Ambiguous {
        /// The prefix as given.
        prefix: String,
        /// One line per job (see [`candidate_line`]), newest first, at most
        /// [`MAX_CANDIDATES`].
        candidates: Vec<String>,
        /// Whether more jobs than those listed match.
        more: bool,
    },
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How a candidate of an ambiguous prefix is listed:
/// `  <id>  <workflow> <target>, <state>`.
pub fn candidate_line(id: &str, workflow: &str, target: &str, state: &str) -> String {
    format!("  {id}  {workflow} {target}, {state}")
}

impl JobIdPrefix {
    /// Check `text` (a whole id or its start).
    pub fn parse(text: &str) -> Result<JobIdPrefix, JobIdError> {
        let trimmed = text.trim();
        let hex: String = trimmed
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if trimmed.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) || hex.len() > HEX_LEN
        {
            return Err(JobIdError::Invalid(text.to_owned()));
        }
        if hex.len() < MIN_PREFIX_LEN {
            return Err(JobIdError::TooShort(text.to_owned()));
        }
        Ok(JobIdPrefix { hex })
    }

    /// The whole id, when the prefix is one.
    pub fn full(&self) -> Option<JobId> {
        (self.hex.len() == HEX_LEN).then(|| JobId(canonical(&self.hex)))
    }

    /// The prefix in canonical form (hyphens where a job id has them).
    pub fn as_canonical(&self) -> String {
        canonical(&self.hex)
    }

    /// Whether `id` (canonical) starts with this prefix.
    pub fn matches(&self, id: &str) -> bool {
        id.starts_with(&self.as_canonical())
    }

    /// The smallest id above every id with this prefix: the next prefix of
    /// the same length, padded with zeros. `None` when there is none (the
    /// prefix is all `f`s).
    pub fn upper_bound(&self) -> Option<JobId> {
        let mut digits: Vec<u8> = self
            .hex
            .chars()
            .map(|c| c.to_digit(16).expect("checked hex") as u8)
            .collect();
        // Add one at the last digit, carrying leftwards.
        let mut i = digits.len();
        loop {
            if i == 0 {
                return None;
            }
            i -= 1;
            if digits[i] == 15 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
        let mut hex: String = digits
            .iter()
            .map(|d| char::from_digit(u32::from(*d), 16).expect("a hex digit"))
            .collect();
        hex.extend(std::iter::repeat_n('0', HEX_LEN - hex.len()));
        Some(JobId(canonical(&hex)))
    }
}

impl FromStr for JobIdPrefix {
    type Err = JobIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobIdPrefix::parse(s)
    }
}

impl fmt::Display for JobIdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_canonical())
    }
}

/// Hex digits (any number up to 32) with hyphens where a UUID has them.
fn canonical(hex: &str) -> String {
    let mut out = String::with_capacity(hex.len() + 4);
    for (i, c) in hex.chars().enumerate() {
        if HYPHENS_AFTER.contains(&i) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

impl Journal {
    /// The job whose id is `prefix` or starts with it (see the module docs):
    /// refused when `prefix` is too short, names no job, or names several
    /// (the error lists them).
    pub fn resolve_job_id(&self, prefix: &str) -> Result<JobId, JobIdError> {
        let parsed = JobIdPrefix::parse(prefix)?;
        let low = parsed.as_canonical();
        let high = parsed.upper_bound();
        // One more than listed, to know whether there are more.
        let limit = (MAX_CANDIDATES + 1) as i64;
        let found: Vec<JobRecord> = self.read(|c| {
            let rows = match &high {
                Some(high) => c
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE id >= ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
                    ))?
                    .query_map(params![low, high.as_str(), limit], raw_job)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                None => c
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE id >= ?1 ORDER BY id DESC LIMIT ?2"
                    ))?
                    .query_map(params![low, limit], raw_job)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            rows.into_iter().map(decode_job).collect()
        })?;
        // The range is exact for canonical ids; the check keeps it so for
        // any other text an import may have brought.
        let mut found: Vec<JobRecord> = found
            .into_iter()
            .filter(|j| parsed.matches(j.id.as_str()))
            .collect();
        match found.len() {
            0 => Err(JobIdError::NotFound(match parsed.full() {
                Some(id) => id.to_string(),
                None => format!("starting with {parsed}"),
            })),
            1 => Ok(found.remove(0).id),
            n => Err(JobIdError::Ambiguous {
                prefix: prefix.to_owned(),
                candidates: found
                    .iter()
                    .take(MAX_CANDIDATES)
                    .map(|j| {
                        candidate_line(j.id.as_str(), &j.workflow, &j.target, j.state.as_str())
                    })
                    .collect(),
                more: n > MAX_CANDIDATES,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::NewJob;

    async fn journal_with(ids: &[&str]) -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("j.sqlite")).unwrap();
        for id in ids {
            journal
                .create_job(NewJob {
                    id: id.parse().unwrap(),
                    ..crate::journal::tests::new_job("web")
                })
                .await
                .unwrap();
        }
        (dir, journal)
    }

    const A: &str = "0197a3c4-5e6f-7a8b-9c0d-111111111111";
    const B: &str = "0197a3c4-5e6f-7a8b-9c0d-222222222222";
    const C: &str = "0197b000-0000-7000-8000-000000000000";
    const F: &str = "ffffffff-ffff-7fff-bfff-ffffffffffff";

    #[tokio::test]
    async fn a_unique_prefix_names_its_job_with_or_without_hyphens_in_any_case() {
        let (_dir, j) = journal_with(&[A, B, C]).await;
        assert_eq!(j.resolve_job_id("0197b").unwrap().as_str(), C);
        assert_eq!(
            j.resolve_job_id("0197a3c4-5e6f-7a8b-9c0d-1")
                .unwrap()
                .as_str(),
            A
        );
        assert_eq!(
            j.resolve_job_id("0197A3C45E6F7A8B9C0D2").unwrap().as_str(),
            B
        );
        assert_eq!(j.resolve_job_id(A).unwrap().as_str(), A, "a whole id too");
        assert_eq!(
            j.resolve_job_id(&A.replace('-', "").to_uppercase())
                .unwrap()
                .as_str(),
            A
        );
    }

    #[tokio::test]
    async fn an_ambiguous_prefix_is_refused_listing_the_candidates() {
        let (_dir, j) = journal_with(&[A, B, C]).await;
        match j.resolve_job_id("0197a3") {
            Err(JobIdError::Ambiguous {
                candidates, more, ..
            }) => {
                assert_eq!(candidates.len(), 2);
                assert!(candidates[0].contains(B), "newest first: {candidates:?}");
                assert!(candidates[1].contains(A));
                assert!(!more);
            }
            other => panic!("{other:?}"),
        }
        let message = j.resolve_job_id("0197").unwrap_err().to_string();
        for id in [A, B, C] {
            assert!(message.contains(id), "{message}");
        }
    }

    #[tokio::test]
    async fn an_ambiguity_lists_at_most_ten_and_says_there_are_more() {
        let ids: Vec<String> = (0..12)
            .map(|i| format!("0197a3c4-5e6f-7a8b-9c0d-0000000000{i:02}"))
            .collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (_dir, j) = journal_with(&refs).await;
        match j.resolve_job_id("0197a3c4") {
            Err(JobIdError::Ambiguous {
                candidates, more, ..
            }) => {
                assert_eq!(candidates.len(), MAX_CANDIDATES);
                assert!(more);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn short_unknown_and_invalid_prefixes_are_refused() {
        let (_dir, j) = journal_with(&[A, F]).await;
        assert!(matches!(
            j.resolve_job_id("019"),
            Err(JobIdError::TooShort(_))
        ));
        assert!(matches!(
            j.resolve_job_id("--01-9"),
            Err(JobIdError::TooShort(_))
        ));
        assert!(matches!(
            j.resolve_job_id("0198"),
            Err(JobIdError::NotFound(_))
        ));
        assert!(matches!(
            j.resolve_job_id("web1"),
            Err(JobIdError::Invalid(_))
        ));
        assert!(matches!(j.resolve_job_id(""), Err(JobIdError::Invalid(_))));
        assert!(matches!(
            j.resolve_job_id(&format!("{A}0")),
            Err(JobIdError::Invalid(_))
        ));
        // The top of the range has no upper bound.
        assert_eq!(j.resolve_job_id("ffff").unwrap().as_str(), F);
        let unknown = "0197a3c4-5e6f-7a8b-9c0d-999999999999";
        assert_eq!(
            j.resolve_job_id(unknown).unwrap_err().to_string(),
            format!("no job with id {unknown}")
        );
    }

    #[test]
    fn the_upper_bound_is_the_next_prefix_padded_with_zeros() {
        let p = JobIdPrefix::parse("0197a3cf").unwrap();
        assert_eq!(
            p.upper_bound().unwrap().as_str(),
            "0197a3d0-0000-0000-0000-000000000000"
        );
        let p = JobIdPrefix::parse("0197ffff-ff").unwrap();
        assert_eq!(
            p.upper_bound().unwrap().as_str(),
            "01980000-0000-0000-0000-000000000000"
        );
        assert_eq!(JobIdPrefix::parse("ffff").unwrap().upper_bound(), None);
        assert!(p.upper_bound().unwrap().as_str().parse::<JobId>().is_ok());
        assert_eq!(JobIdPrefix::parse(A).unwrap().full().unwrap().as_str(), A);
        assert_eq!(JobIdPrefix::parse("0197a3c45e").unwrap().full(), None);
        assert_eq!(
            JobIdPrefix::parse("0197A3C45E").unwrap().to_string(),
            "0197a3c4-5e"
        );
    }
}
