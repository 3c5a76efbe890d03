//! A session's reads never go back in time: once a read has seen a row on one
//! replica, no later read of that session runs on a replica that lacks it.

mod common;

use std::time::{Duration, Instant};

use common::Fixture;

#[tokio::test]
async fn a_sessions_reads_never_go_back_in_time() {
    let fixture = Fixture::start().await;
    // No read-your-writes: only monotonic reads keep the session off
    // replica2, which has not replayed the row replica1 showed it.
    let pool = fixture
        .builder()
        .read_your_writes(false)
        .connect()
        .await
        .expect("connects");
    let primary = fixture.cluster.connect("primary").await;
    primary
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    fixture.cluster.wait_for_replicas_to_catch_up().await;
    fixture.cluster.pause_replay("replica2").await;
    primary
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    fixture.cluster.wait_for_replay_on("replica1").await;
    let session = pool.session();
    let sees = async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM t")
            .fetch_one(&session)
            .await
            .expect("a read")
            == 1
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sees().await {
        assert!(Instant::now() < deadline, "no read ever reached replica1");
    }
    for read in 0..60 {
        assert!(sees().await, "read {read} went back in time");
    }
}
