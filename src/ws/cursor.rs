//! A session's place in the event log, and its replays, as a pure type: no store, no bus, no
//! socket. The session asks it what to do next and does it — send a replayed event, read the
//! next chunk from the store, follow the bus — and offers it every live event.
//!
//! It owns DESIGN invariant 2 for one socket: the ids it lets through are consecutive, each at
//! most once, across resume and lag; a position it cannot replay in full (another epoch, an id
//! above the newest, garbage, or a range that left the retention window) becomes a resync,
//! never a partial replay. Memory is one chunk of [`REPLAY_CHUNK`] events at most
//! (invariant 5).

use crate::domain::Event;

/// Events read from the store per step of a replay (bounds a replay's memory).
pub const REPLAY_CHUNK: usize = 256;

/// Where one session stands in the event log.
#[derive(Debug)]
pub struct Cursor {
    /// The newest event id this session has handled (sent, queued, or filtered out).
    position: u64,
    /// Replaying from the store up to this id (resume, lag, or a gap in what the bus offered).
    catching_up: Option<u64>,
    /// The current replay chunk, sent before anything else from the store or the bus.
    backlog: std::vec::IntoIter<Event>,
}

/// Tell the client to refetch over REST and follow on from `last_event_id`: the position it
/// asked for cannot be replayed in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    pub last_event_id: u64,
}

/// One read from the store: the visible events with `after < id <= up_to`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub after: u64,
    pub up_to: u64,
    pub limit: usize,
}

/// The next step of a replay.
#[derive(Debug, PartialEq)]
pub enum Replay {
    /// Send this stored event.
    Send(Event),
    /// Read this range from the store and hand the answer to [`Cursor::refilled`].
    Read(Read),
    /// Nothing to replay: follow the bus.
    Live,
}

/// What to do with an event the bus offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The next id: the session's, to send if its channel shows it.
    Next,
    /// Already handled (replayed, or sent before): skip it.
    Duplicate,
    /// Ids are missing before it: the cursor now replays them and it from the store.
    Refill,
}

impl Cursor {
    /// Following live from `newest`, the durable watermark read after subscribing to the bus.
    pub fn new(newest: u64) -> Self {
        Self {
            position: newest,
            catching_up: None,
            backlog: Vec::new().into_iter(),
        }
    }

    /// The newest id handled.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// A replay is under way: the bus's events wait in its ring.
    pub fn is_catching_up(&self) -> bool {
        self.catching_up.is_some()
    }

    /// Applies the client's `last_event_id`/`epoch`. Without `last_event_id` the session
    /// follows live from `newest`; with one in `epoch` (or no epoch given) and not above
    /// `newest` it replays what was missed; with anything else it resyncs.
    pub fn resume(
        &mut self,
        requested: Option<&str>,
        requested_epoch: Option<&str>,
        epoch: &str,
        newest: u64,
    ) -> Option<Resync> {
        let requested = requested?;
        let same_epoch = requested_epoch.is_none_or(|e| e == epoch);
        match requested.trim().parse::<u64>() {
            Ok(after) if same_epoch && after <= newest => {
                self.position = after;
                self.catching_up = Some(newest);
                None
            }
            // An unknown position (another epoch, a future id, garbage): never a partial replay.
            _ => {
                self.position = newest;
                Some(Resync {
                    last_event_id: newest,
                })
            }
        }
    }

    /// The bus's receiver lagged past its ring: catch up from the store to `published`.
    pub fn lagged(&mut self, published: u64) {
        self.catching_up = Some(published);
    }

    /// What the replay does next, if one is under way.
    pub fn next_replay(&mut self) -> Replay {
        if let Some(event) = self.backlog.next() {
            return Replay::Send(event);
        }
        let Some(up_to) = self.catching_up else {
            return Replay::Live;
        };
        if self.position < up_to {
            return Replay::Read(Read {
                after: self.position,
                up_to,
                limit: REPLAY_CHUNK,
            });
        }
        self.finish(up_to);
        Replay::Live
    }

    /// Takes the store's answer to `read`: a chunk to send, the end of the replay (no visible
    /// event left in the range), or `None` from the store, meaning part of the range left the
    /// retention window. Then what went out so far is a gap-free prefix, and the client
    /// refetches the rest over REST.
    pub fn refilled(&mut self, read: Read, chunk: Option<Vec<Event>>) -> Option<Resync> {
        match chunk {
            Some(chunk) => {
                match chunk.last().map(|event| event.id) {
                    Some(last) => {
                        self.position = last;
                        self.backlog = chunk.into_iter();
                    }
                    None => self.finish(read.up_to),
                }
                None
            }
            None => {
                self.position = read.up_to;
                self.finish(read.up_to);
                Some(Resync {
                    last_event_id: read.up_to,
                })
            }
        }
    }

    /// Offers the event with `id` from the bus.
    pub fn offer(&mut self, id: u64) -> Offer {
        if id <= self.position {
            return Offer::Duplicate;
        }
        if id > self.position.saturating_add(1) {
            // Cannot happen while subscribed, but a gap must never reach the client: take the
            // missing ids and this one from the store (it is durable once published).
            self.catching_up = Some(id);
            return Offer::Refill;
        }
        self.position = id;
        Offer::Next
    }

    fn finish(&mut self, up_to: u64) {
        self.position = self.position.max(up_to);
        self.catching_up = None;
        // Give the chunk's memory back; an idle socket keeps none.
        self.backlog = Vec::new().into_iter();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Timestamp};
    use uuid::Uuid;

    const EPOCH: &str = "epoch-1";

    /// An event log holding the ids `oldest..=newest`, every `hidden_every`-th of them
    /// invisible to the channel (0: all visible), answering reads as `Store::replay_after`.
    struct Log {
        oldest: u64,
        newest: u64,
        hidden_every: u64,
    }

    impl Log {
        fn retained(oldest: u64, newest: u64) -> Self {
            Self {
                oldest,
                newest,
                hidden_every: 0,
            }
        }

        fn visible(&self, id: u64) -> bool {
            self.hidden_every == 0 || id % self.hidden_every != 0
        }

        fn read(&self, read: Read) -> Option<Vec<Event>> {
            if self.oldest > read.after + 1 {
                return None;
            }
            let last = read.up_to.min(self.newest);
            Some(
                (read.after + 1..=last)
                    .filter(|&id| self.visible(id))
                    .take(read.limit)
                    .map(event)
                    .collect(),
            )
        }
    }

    fn event(id: u64) -> Event {
        Event {
            id,
            kind: EventKind::BusinessCreated,
            business_id: Uuid::nil(),
            timestamp: Timestamp::from_micros(0),
            frame: id.to_string(),
            audience: Default::default(),
        }
    }

    /// What reaches the client, in order.
    #[derive(Debug, PartialEq)]
    enum Out {
        Event(u64),
        Resync(u64),
    }

    /// Runs the replay to its end against `log`, as the session does between bus events.
    fn replay(cursor: &mut Cursor, log: &Log, out: &mut Vec<Out>) {
        loop {
            match cursor.next_replay() {
                Replay::Send(event) => out.push(Out::Event(event.id)),
                Replay::Read(read) => {
                    assert!(read.limit <= REPLAY_CHUNK, "a replay is read in chunks");
                    if let Some(resync) = cursor.refilled(read, log.read(read)) {
                        out.push(Out::Resync(resync.last_event_id));
                    }
                }
                Replay::Live => return,
            }
        }
    }

    /// Offers `ids` from the bus, replaying wherever the cursor asks to.
    fn offer(cursor: &mut Cursor, log: &Log, ids: impl IntoIterator<Item = u64>) -> Vec<Out> {
        let mut out = Vec::new();
        replay(cursor, log, &mut out);
        for id in ids {
            if cursor.offer(id) == Offer::Next && log.visible(id) {
                out.push(Out::Event(id));
            }
            replay(cursor, log, &mut out);
        }
        out
    }

    fn events(ids: impl IntoIterator<Item = u64>) -> Vec<Out> {
        ids.into_iter().map(Out::Event).collect()
    }

    #[test]
    fn invariant_2_live_events_pass_once_in_order() {
        let log = Log::retained(1, 10);
        let mut cursor = Cursor::new(3);
        let out = offer(&mut cursor, &log, [2, 3, 4, 4, 5, 3, 6]);
        assert_eq!(
            out,
            events(4..=6),
            "no duplicate, nothing from before the watermark"
        );
        assert_eq!(cursor.position(), 6);
    }

    #[test]
    fn invariant_2_resume_replays_the_missed_events_then_follows_the_bus_without_duplicates() {
        let log = Log::retained(1, 600);
        let mut cursor = Cursor::new(600);
        assert_eq!(cursor.resume(Some(" 40 "), Some(EPOCH), EPOCH, 600), None);
        assert!(cursor.is_catching_up());
        // Events published while the replay ran are offered again by the bus.
        let out = offer(&mut cursor, &log, 590..=603);
        assert_eq!(
            out,
            events(41..=603),
            "no gap, no duplicate across replay and bus"
        );
        assert!(!cursor.is_catching_up());
    }

    #[test]
    fn invariant_2_resume_without_an_epoch_or_at_the_newest_id_is_a_replay() {
        let log = Log::retained(1, 9);
        let mut cursor = Cursor::new(9);
        assert_eq!(cursor.resume(Some("7"), None, EPOCH, 9), None);
        assert_eq!(offer(&mut cursor, &log, [10]), events(8..=10));
        let mut cursor = Cursor::new(9);
        assert_eq!(cursor.resume(Some("9"), Some(EPOCH), EPOCH, 9), None);
        assert_eq!(offer(&mut cursor, &log, [10]), events([10]));
    }

    #[test]
    fn invariant_2_an_unknown_position_is_a_resync_never_a_partial_replay() {
        let cases = [
            (Some("3"), Some("another-epoch"), "a wrong epoch"),
            (Some("11"), Some(EPOCH), "an id above the newest"),
            (Some("three"), Some(EPOCH), "not a number"),
            (Some("-1"), None, "negative"),
        ];
        let log = Log::retained(1, 10);
        for (requested, epoch, why) in cases {
            let mut cursor = Cursor::new(10);
            let resync = cursor.resume(requested, epoch, EPOCH, 10);
            assert_eq!(resync, Some(Resync { last_event_id: 10 }), "{why}");
            assert!(!cursor.is_catching_up(), "{why}");
            assert_eq!(offer(&mut cursor, &log, [11]), events([11]), "{why}");
        }
    }

    #[test]
    fn invariant_2_no_last_event_id_follows_live() {
        let mut cursor = Cursor::new(10);
        assert_eq!(cursor.resume(None, Some("any"), EPOCH, 10), None);
        assert_eq!(cursor.next_replay(), Replay::Live);
        assert_eq!(cursor.position(), 10);
    }

    #[test]
    fn invariant_2_resuming_past_the_retention_window_is_a_resync() {
        let log = Log::retained(50, 100);
        let mut cursor = Cursor::new(100);
        assert_eq!(cursor.resume(Some("10"), Some(EPOCH), EPOCH, 100), None);
        let out = offer(&mut cursor, &log, [101]);
        assert_eq!(
            out,
            vec![Out::Resync(100), Out::Event(101)],
            "nothing of 11..=100"
        );
    }

    #[test]
    fn invariant_2_pruned_during_a_replay_leaves_a_gap_free_prefix_then_a_resync() {
        let mut log = Log::retained(1, 1000);
        let mut cursor = Cursor::new(1000);
        cursor.resume(Some("0"), None, EPOCH, 1000);
        let mut out = Vec::new();
        for _ in 0..REPLAY_CHUNK {
            match cursor.next_replay() {
                Replay::Read(read) => assert_eq!(cursor.refilled(read, log.read(read)), None),
                Replay::Send(event) => out.push(Out::Event(event.id)),
                Replay::Live => unreachable!("the replay has only begun"),
            }
        }
        log.oldest = 700; // the writer pruned while the first chunk went out
        replay(&mut cursor, &log, &mut out);
        let mut expected = events(1..=REPLAY_CHUNK as u64);
        expected.push(Out::Resync(1000));
        assert_eq!(out, expected);
        assert_eq!(cursor.position(), 1000);
        assert!(!cursor.is_catching_up());
    }

    #[test]
    fn invariant_2_a_lagged_receiver_catches_up_from_the_store_in_chunks() {
        let log = Log::retained(1, 2000);
        let mut cursor = Cursor::new(5);
        assert_eq!(offer(&mut cursor, &log, [6]), events([6]));
        cursor.lagged(1990);
        let mut reads = 0;
        let mut out = Vec::new();
        loop {
            match cursor.next_replay() {
                Replay::Read(read) => {
                    reads += 1;
                    assert_eq!(read.up_to, 1990);
                    cursor.refilled(read, log.read(read));
                }
                Replay::Send(event) => out.push(Out::Event(event.id)),
                Replay::Live => break,
            }
        }
        assert_eq!(out, events(7..=1990));
        assert_eq!(
            reads,
            1984_usize.div_ceil(REPLAY_CHUNK),
            "one read per chunk"
        );
        // After a lag the receiver resumes at the oldest event its ring still holds.
        assert_eq!(offer(&mut cursor, &log, 1900..=1992), events(1991..=1992));
    }

    #[test]
    fn invariant_2_a_gap_on_the_bus_is_filled_from_the_store() {
        let log = Log::retained(1, 20);
        let mut cursor = Cursor::new(5);
        assert_eq!(cursor.offer(9), Offer::Refill);
        assert_eq!(
            cursor.next_replay(),
            Replay::Read(Read {
                after: 5,
                up_to: 9,
                limit: REPLAY_CHUNK
            })
        );
        let mut cursor = Cursor::new(5);
        assert_eq!(offer(&mut cursor, &log, [9, 10]), events(6..=10));
    }

    #[test]
    fn invariant_2_events_the_channel_does_not_show_still_move_the_position() {
        let log = Log {
            oldest: 1,
            newest: 30,
            hidden_every: 3,
        };
        let mut cursor = Cursor::new(30);
        cursor.resume(Some("0"), None, EPOCH, 30);
        let out = offer(&mut cursor, &log, [30, 31, 32, 33]);
        assert_eq!(out, events((1..=32).filter(|id| id % 3 != 0)));
        assert_eq!(
            cursor.position(),
            33,
            "a hidden event is handled, not pending"
        );
    }
}
