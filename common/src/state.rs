//! The certificate state machine (from the old certificate agent's diagram).
//!
//! ```text
//!   add    allowed from: (none), deleted, error, unavailable -> generating   -> downloadable | error
//!   regen  allowed from: error, downloadable                 -> regenerating -> downloadable | error
//!   delete allowed from: error, downloadable                 -> deleting     -> deleted      | error
//! ```
//!
//! Architecture invariant: this module is the only place where transitions are
//! written down. The CC's Redis scripts receive the allowed source states from
//! [`Action::allowed_from`] as arguments instead of repeating the table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    Generating,
    Regenerating,
    Deleting,
    Downloadable,
    Deleted,
    Error,
    Unavailable,
}

impl CertState {
    pub const ALL: [CertState; 7] = [
        CertState::Generating,
        CertState::Regenerating,
        CertState::Deleting,
        CertState::Downloadable,
        CertState::Deleted,
        CertState::Error,
        CertState::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Generating => "generating",
            CertState::Regenerating => "regenerating",
            CertState::Deleting => "deleting",
            CertState::Downloadable => "downloadable",
            CertState::Deleted => "deleted",
            CertState::Error => "error",
            CertState::Unavailable => "unavailable",
        }
    }

    /// A state in which a job is queued or running for the certificate.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            CertState::Generating | CertState::Regenerating | CertState::Deleting
        )
    }
}

impl fmt::Display for CertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown certificate state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for CertState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Add,
    Regen,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action `{0}`: use add, regen or delete")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "add" => Ok(Action::Add),
            "regen" => Ok(Action::Regen),
            "delete" => Ok(Action::Delete),
            other => Err(UnknownAction(other.to_owned())),
        }
    }
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Regen => "regen",
            Action::Delete => "delete",
        }
    }

    /// Source states from which this action may start. `add` may also start
    /// when the certificate does not exist yet (see [`Action::allowed_when_absent`]).
    pub fn allowed_from(self) -> &'static [CertState] {
        match self {
            Action::Add => &[CertState::Deleted, CertState::Error, CertState::Unavailable],
            Action::Regen | Action::Delete => &[CertState::Error, CertState::Downloadable],
        }
    }

    /// Whether the action may be requested for a certificate that was never added.
    pub fn allowed_when_absent(self) -> bool {
        self == Action::Add
    }

    /// The state the certificate is in while the job is queued or running.
    pub fn pending_state(self) -> CertState {
        match self {
            Action::Add => CertState::Generating,
            Action::Regen => CertState::Regenerating,
            Action::Delete => CertState::Deleting,
        }
    }

    /// The state the certificate reaches when the job succeeds (failure: `error`).
    pub fn success_state(self) -> CertState {
        match self {
            Action::Add | Action::Regen => CertState::Downloadable,
            Action::Delete => CertState::Deleted,
        }
    }

    /// Whether the action produces a new PDF (and so needs a learner name).
    pub fn renders(self) -> bool {
        matches!(self, Action::Add | Action::Regen)
    }

    /// Check a requested transition; `current` is `None` for a certificate that
    /// does not exist.
    pub fn check(self, current: Option<CertState>) -> Result<CertState, IllegalTransition> {
        let ok = match current {
            None => self.allowed_when_absent(),
            Some(state) => self.allowed_from().contains(&state),
        };
        if ok {
            Ok(self.pending_state())
        } else {
            Err(IllegalTransition {
                action: self,
                current,
            })
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IllegalTransition {
    pub action: Action,
    pub current: Option<CertState>,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: Vec<&str> = self
            .action
            .allowed_from()
            .iter()
            .map(|s| s.as_str())
            .collect();
        match self.current {
            None => write!(
                f,
                "cannot {} a certificate that does not exist; add it first",
                self.action
            ),
            Some(state) => write!(
                f,
                "cannot {} a certificate in state `{}`; {} is allowed only from: {}",
                self.action,
                state,
                self.action,
                allowed.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_match_the_diagram() {
        use CertState::*;
        assert_eq!(Action::Add.check(None), Ok(Generating));
        for s in [Deleted, Error, Unavailable] {
            assert_eq!(Action::Add.check(Some(s)), Ok(Generating));
        }
        for s in [Generating, Regenerating, Deleting, Downloadable] {
            assert!(Action::Add.check(Some(s)).is_err());
        }
        for a in [Action::Regen, Action::Delete] {
            assert!(a.check(None).is_err());
            for s in CertState::ALL {
                assert_eq!(
                    a.check(Some(s)).is_ok(),
                    matches!(s, Error | Downloadable),
                    "{a} from {s}"
                );
            }
        }
        assert_eq!(Action::Regen.success_state(), Downloadable);
        assert_eq!(Action::Delete.success_state(), Deleted);
    }

    #[test]
    fn states_round_trip_through_strings() {
        for s in CertState::ALL {
            assert_eq!(s.as_str().parse::<CertState>().unwrap(), s);
        }
        assert!("bogus".parse::<CertState>().is_err());
        assert!("remove".parse::<Action>().is_err());
    }

    #[test]
    fn illegal_transition_names_current_state() {
        let e = Action::Regen
            .check(Some(CertState::Generating))
            .unwrap_err();
        assert!(e.to_string().contains("`generating`"), "{e}");
    }
}
