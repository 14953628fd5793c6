//! The ICE agent patch of vendor/README.md that lets a connection come up without waiting
//! a second: two real agents on loopback, the controlling one (the server's role for
//! subscriptions) meeting a peer whose checks come before its trickled candidates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use webrtc::ice::agent::Agent;
use webrtc::ice::agent::agent_config::AgentConfig;
use webrtc::ice::candidate::{Candidate, CandidateType};
use webrtc::ice::network_type::NetworkType;

type Candidates = Arc<Mutex<Vec<Arc<dyn Candidate + Send + Sync>>>>;

/// A host-only agent on 127.0.0.1, and the candidates it gathers.
async fn agent(controlling: bool, check_interval: Duration) -> (Arc<Agent>, Candidates) {
    let agent = Agent::new(AgentConfig {
        network_types: vec![NetworkType::Udp4],
        candidate_types: vec![CandidateType::Host],
        include_loopback: true,
        ip_filter: Arc::new(Some(Box::new(|ip| ip.is_loopback()))),
        is_controlling: controlling,
        check_interval,
        ..Default::default()
    })
    .await
    .expect("agent");
    let agent = Arc::new(agent);
    let gathered: Candidates = Arc::default();
    let (done, mut gathering) = mpsc::unbounded_channel();
    let list = gathered.clone();
    agent.on_candidate(Box::new(move |c| {
        match c {
            Some(c) => list.lock().unwrap().push(c),
            None => {
                let _ = done.send(());
            }
        }
        Box::pin(async {})
    }));
    agent.gather_candidates().expect("gathering");
    gathering.recv().await.expect("gathering completes");
    assert!(
        !gathered.lock().unwrap().is_empty(),
        "a host candidate on 127.0.0.1"
    );
    (agent, gathered)
}

fn give(candidates: &Candidates, to: &Agent) {
    for c in candidates.lock().unwrap().iter() {
        to.add_remote_candidate(c).expect("remote candidate");
    }
}

/// Starts both agents' checks (the controlled one first, as a subscriber that answered
/// our offer does) and waits until the controlling one is connected.
async fn connect(controlling: &Arc<Agent>, controlled: &Arc<Agent>, patience: Duration) -> bool {
    let (ufrag_a, pwd_a) = controlling.get_local_user_credentials().await;
    let (ufrag_b, pwd_b) = controlled.get_local_user_credentials().await;
    let (_cancel_b, cancel_rx_b) = mpsc::channel(1);
    let b = controlled.clone();
    tokio::spawn(async move { b.accept(cancel_rx_b, ufrag_a, pwd_a).await.is_ok() });
    let (_cancel_a, cancel_rx_a) = mpsc::channel(1);
    let a = controlling.clone();
    let dial = tokio::spawn(async move { a.dial(cancel_rx_a, ufrag_b, pwd_b).await.is_ok() });
    matches!(tokio::time::timeout(patience, dial).await, Ok(Ok(true)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_candidate_replaces_the_peer_reflexive_one_learnt_from_its_checks() {
    let (server, server_candidates) = agent(true, Duration::from_millis(200)).await;
    let (client, client_candidates) = agent(false, Duration::from_millis(200)).await;
    // The client knows the server's candidates; its own reach the server later.
    give(&server_candidates, &client);
    let connecting = {
        let (server, client) = (server.clone(), client.clone());
        tokio::spawn(async move { connect(&server, &client, Duration::from_secs(10)).await })
    };
    // The client's checks arrive first: the server knows its address as peer-reflexive.
    let mut learnt = false;
    for _ in 0..100 {
        let remote = server.get_remote_candidates_stats().await;
        if remote
            .iter()
            .any(|c| c.candidate_type == CandidateType::PeerReflexive)
        {
            learnt = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        learnt,
        "the client's first checks make a peer-reflexive candidate"
    );
    give(&client_candidates, &server);
    assert!(connecting.await.unwrap(), "the agents connect");
    let pair = server
        .get_selected_candidate_pair()
        .expect("a selected pair");
    // Unpatched, responses from that address go to the peer-reflexive candidate's pair,
    // which is nominated after prflx_acceptance_min_wait (a second).
    assert_eq!(
        pair.remote.candidate_type(),
        CandidateType::Host,
        "the pair uses the signalled candidate: {pair:?}"
    );
    let _ = server.close().await;
    let _ = client.close().await;
}
