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
    let replica1 = fixture.cluster.connect("replica1").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while replica1
        .query_opt("SELECT 1 FROM t", &[])
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "replica1 never replayed the row");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
