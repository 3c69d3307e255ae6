//! Customer-base analytics for patron (pure functions, no IO, no async).
