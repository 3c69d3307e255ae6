//! referrals (issue 13).
