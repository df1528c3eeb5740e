//! Actions and notifications: the I/O half of alarms.
