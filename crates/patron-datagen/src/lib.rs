//! Synthetic CRM data for patron.
