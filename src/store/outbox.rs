//! The outbox queue as the mail drainer and `app outbox` see it (rows are written by
//! [`super::mutations`], in the transaction of their cause).
