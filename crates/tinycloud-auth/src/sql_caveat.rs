//! TEMPORARY stub; replaced by the real module.
use serde_json::{Map, Value};
#[derive(Debug, Clone, PartialEq)]
pub struct SqlCaveat(Map<String, Value>);
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlCaveatError {
    #[error("x")]
    X,
}
impl SqlCaveatError {
    pub fn code(&self) -> &'static str {
        "x"
    }
}
impl SqlCaveat {
    pub fn from_caveat(m: &Map<String, Value>) -> Result<Option<SqlCaveat>, SqlCaveatError> {
        if m.contains_key("mode") || m.contains_key("statements") {
            Ok(Some(SqlCaveat(m.clone())))
        } else {
            Ok(None)
        }
    }
}
pub fn contains(parent: &SqlCaveat, child: &SqlCaveat) -> Result<(), SqlCaveatError> {
    if parent == child {
        Ok(())
    } else {
        Err(SqlCaveatError::X)
    }
}
impl SqlCaveat {
    pub fn statement_names(&self) -> Vec<String> {
        vec![]
    }
}
