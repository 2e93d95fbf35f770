use super::*;
use std::future::poll_fn;

fn limits(dir: &std::path::Path, memory: usize, file: u64) -> AnswerLimits {
    AnswerLimits {
        memory,
        file,
        dir: dir.to_owned(),
    }
}

fn bytes(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

async fn next(rx: &mut AnswerReceiver) -> Option<std::io::Result<Bytes>> {
    poll_fn(|cx| rx.poll_chunk(cx)).await
}

/// Everything until the end; Err when it was cut off.
async fn drain(rx: &mut AnswerReceiver) -> Result<Vec<u8>, Vec<u8>> {
    let mut all = Vec::new();
    loop {
        match next(rx).await {
            Some(Ok(chunk)) => all.extend_from_slice(&chunk),
            Some(Err(_)) => return Err(all),
            None => return Ok(all),
        }
    }
}

/// Spool files open in `dir`: they have no name there (see `append`), so they are counted by
/// this process's descriptors, which name them `dir/#inode (deleted)`.
fn files(dir: &std::path::Path) -> usize {
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "a spool file has a name"
    );
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[tokio::test]
async fn chunks_past_memory_go_to_a_file_and_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 4, 1 << 20));
    for piece in ["ab", "cd", "ef", "gh", "ij"] {
        assert_eq!(tx.push(bytes(piece)), Push::Queued);
    }
    assert_eq!(files(dir.path()), 1, "spooled past 4 bytes");
    tx.end();
    assert_eq!(drain(&mut rx).await.unwrap(), b"abcdefghij");
    drop(rx);
    assert_eq!(
        files(dir.path()),
        0,
        "the spool file is gone with the answer"
    );
}

#[tokio::test]
async fn a_reader_that_catches_up_brings_chunks_back_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 2, 1 << 20));
    tx.push(bytes("ab"));
    tx.push(bytes("cd")); // memory full: to the file
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "ab");
    // The file holds "cd" unread: this must queue behind it, not in memory.
    tx.push(bytes("ef"));
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "cdef");
    tx.push(bytes("gh"));
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "gh");
    tx.end();
    assert!(next(&mut rx).await.is_none());
}

#[tokio::test]
async fn a_full_spool_asks_the_sender_to_wait_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 2, 4));
    assert_eq!(tx.push(bytes("ab")), Push::Queued);
    assert_eq!(tx.push(bytes("cdef")), Push::Queued);
    assert_eq!(tx.push(bytes("g")), Push::Full(bytes("g")));
    let room = tx.room();
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "ab");
    room.await;
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "cdef");
    assert_eq!(tx.push(bytes("g")), Push::Queued);
}

#[tokio::test]
async fn without_a_file_one_chunk_always_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 0, 0));
    assert_eq!(tx.push(bytes("abc")), Push::Queued);
    assert_eq!(tx.push(bytes("d")), Push::Full(bytes("d")));
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "abc");
    assert_eq!(tx.push(bytes("d")), Push::Queued);
    assert_eq!(files(dir.path()), 0);
}

#[tokio::test]
async fn a_sender_dropped_before_the_end_cuts_the_answer_off() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 2, 1 << 20));
    tx.push(bytes("ab"));
    tx.push(bytes("cd"));
    drop(tx);
    assert_eq!(drain(&mut rx).await.unwrap_err(), b"abcd");
}

#[tokio::test]
async fn a_reader_that_left_frees_everything_and_the_sender_hears_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = channel(limits(dir.path(), 2, 1 << 20));
    tx.push(bytes("ab"));
    tx.push(bytes("cd"));
    assert_eq!(files(dir.path()), 1);
    drop(rx);
    assert_eq!(files(dir.path()), 0);
    assert!(tx.is_gone());
    assert_eq!(tx.push(bytes("ef")), Push::Gone);
    tx.room().await; // woken by the departure, not left hanging
}

#[tokio::test]
async fn a_spool_directory_that_cannot_be_written_makes_the_sender_wait_and_loses_nothing() {
    let (tx, mut rx) = channel(limits(std::path::Path::new("/nonexistent/rr"), 2, 1 << 20));
    assert_eq!(tx.push(bytes("ab")), Push::Queued);
    assert_eq!(tx.push(bytes("cd")), Push::Full(bytes("cd")));
    let room = tx.room();
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "ab");
    room.await;
    assert_eq!(tx.push(bytes("cd")), Push::Queued);
    tx.end();
    assert_eq!(drain(&mut rx).await.unwrap(), b"cd");
    // No memory buffer and nothing waiting at all: a chunk the file cannot take goes through
    // whole, or no room would ever be made for it.
    let (tx, mut rx) = channel(limits(std::path::Path::new("/nonexistent/rr"), 0, 1 << 20));
    assert_eq!(tx.push(bytes("efgh")), Push::Queued);
    assert_eq!(tx.push(bytes("ij")), Push::Full(bytes("ij")));
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "efgh");
    assert_eq!(tx.push(bytes("ij")), Push::Queued);
    tx.end();
    assert_eq!(drain(&mut rx).await.unwrap(), b"ij");
}

/// A file that fails part-way through a write (a full disk) keeps what it took before; the
/// part of the failed chunk it wrote is never read, and the chunk is taken again later.
#[tokio::test]
async fn a_spool_write_that_fails_half_way_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 2, 1 << 20));
    assert_eq!(tx.push(bytes("ab")), Push::Queued);
    assert_eq!(tx.push(bytes("cd")), Push::Queued);
    // The file is there now: make its next write fail as a full disk would, after a few bytes.
    let spool = tx
        .shared
        .lock()
        .spool
        .as_ref()
        .unwrap()
        .file
        .try_clone()
        .unwrap();
    {
        use std::os::unix::fs::FileExt;
        spool.write_all_at(b"junk", 2).unwrap();
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    tx.shared.lock().spool.as_mut().unwrap().file = full;
    assert_eq!(tx.push(bytes("ef")), Push::Full(bytes("ef")));
    tx.shared.lock().spool.as_mut().unwrap().file = spool;
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "ab");
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "cd");
    assert_eq!(tx.push(bytes("ef")), Push::Queued);
    tx.end();
    assert_eq!(drain(&mut rx).await.unwrap(), b"ef");
}

#[tokio::test]
async fn the_reader_waits_for_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 2, 1 << 20));
    let reader = tokio::spawn(async move { drain(&mut rx).await });
    tokio::task::yield_now().await;
    tx.push(bytes("late"));
    tx.end();
    assert_eq!(reader.await.unwrap().unwrap(), b"late");
}

#[tokio::test]
async fn a_chunk_larger_than_the_memory_left_is_split_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 4, 1 << 20));
    assert_eq!(tx.push(bytes("ab")), Push::Queued);
    // 2 bytes of room: "cd" to memory, the rest to the file.
    assert_eq!(tx.push(bytes("cdefghij")), Push::Queued);
    assert_eq!(files(dir.path()), 1);
    assert_eq!(
        tx.shared.lock().in_memory,
        4,
        "never more than the memory limit"
    );
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "ab");
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "cd");
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "efghij");
    // Caught up: a big chunk again starts in memory, split at the limit.
    assert_eq!(tx.push(bytes("klmnop")), Push::Queued);
    assert_eq!(tx.shared.lock().in_memory, 4);
    tx.end();
    assert_eq!(drain(&mut rx).await.unwrap(), b"klmnop");
}

#[tokio::test]
async fn a_split_chunk_whose_rest_does_not_fit_the_file_waits_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = channel(limits(dir.path(), 2, 3));
    // "ab" to memory; "cdefg" does not fit the 3-byte file: the sender keeps it.
    assert_eq!(tx.push(bytes("abcdefg")), Push::Full(bytes("cdefg")));
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "ab");
    assert_eq!(
        tx.push(bytes("cdefg")),
        Push::Queued,
        "cd to memory, efg to the file"
    );
    tx.end();
    assert_eq!(drain(&mut rx).await.unwrap(), b"cdefg");
}

#[tokio::test]
async fn bytes_past_a_complete_length_are_dropped_queued_or_later() {
    let dir = tempfile::tempdir().unwrap();
    // 2 bytes of memory: "ef" waits in the spool file when the length is reached.
    let (tx, mut rx) = channel(limits(dir.path(), 2, 1 << 20));
    assert_eq!(tx.push(bytes("ab")), Push::Queued);
    assert_eq!(tx.push(bytes("ef")), Push::Queued);
    assert_eq!(next(&mut rx).await.unwrap().unwrap(), "ab");
    rx.complete(2);
    assert_eq!(files(dir.path()), 0, "what waited past the length is gone");
    assert_eq!(tx.push(bytes("gh")), Push::Gone, "nothing more is queued");
    assert_eq!(files(dir.path()), 0);
    tx.end();
}

/// A turn that must be free at once.
async fn turn(share: &crate::dispatch::share::Share) -> crate::dispatch::share::Turn {
    tokio::time::timeout(std::time::Duration::from_secs(5), share.turn())
        .await
        .expect("a free place")
}

#[tokio::test]
async fn a_held_turn_comes_back_when_the_producer_is_done_not_when_the_client_has_read() {
    use crate::dispatch::share::Share;
    let dir = tempfile::tempdir().unwrap();
    let share = Share::new(3);

    // Ended, with the answer still unread: PHP is done, the place is free.
    let (tx, mut rx) = channel(limits(dir.path(), 1024, 0));
    rx.hold_until_done(turn(&share).await);
    assert_eq!(share.free(), 2);
    assert_eq!(tx.push(bytes("abc")), Push::Queued);
    tx.end();
    assert_eq!(share.free(), 3);
    assert_eq!(drain(&mut rx).await.unwrap(), b"abc");

    // Cut off (the sender dropped), and a client that left first: the producer still runs
    // until its sender goes.
    let (tx, rx) = channel(limits(dir.path(), 1024, 0));
    rx.hold_until_done(turn(&share).await);
    drop(rx);
    assert_eq!(share.free(), 2);
    drop(tx);
    assert_eq!(share.free(), 3);

    // Handed over after the producer was done: given back at once.
    let (tx, rx) = channel(limits(dir.path(), 1024, 0));
    tx.end();
    rx.hold_until_done(turn(&share).await);
    assert_eq!(share.free(), 3);
}
