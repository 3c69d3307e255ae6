//! liability (issue 13).
