//! Saved rule-based segments and their filter language.
