//! The attach pump over in-memory duplex pipes (real bytes both ways, EOF in each direction,
//! errors), the thread-backed stdin reader, and resize events from a real SIGWINCH.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_terminal::attach::{pump, resize_events_with, thread_reader, PumpStats};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

/// The four ends the pump needs, plus the user's and the agent's ends.
struct Wires {
    user_keys: DuplexStream,
    user_screen: DuplexStream,
    agent_stdin: DuplexStream,
    agent_stdout: DuplexStream,
}

fn wire() -> (
    Wires,
    (DuplexStream, DuplexStream, DuplexStream, DuplexStream),
) {
    let (user_keys, stdin) = duplex(64);
    let (stdout, user_screen) = duplex(64);
    let (remote_in, agent_stdin) = duplex(64);
    let (agent_stdout, remote_out) = duplex(64);
    (
        Wires {
            user_keys,
            user_screen,
            agent_stdin,
            agent_stdout,
        },
        (stdin, stdout, remote_in, remote_out),
    )
}

#[tokio::test]
async fn bytes_flow_both_ways_until_the_agent_exits() {
    let (mut w, (i, o, ri, ro)) = wire();
    let pumping = tokio::spawn(pump(i, o, ri, ro));

    w.user_keys.write_all(b"ls\r").await.unwrap();
    let mut got = [0u8; 3];
    timeout(WAIT, w.agent_stdin.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"ls\r");

    w.agent_stdout.write_all(b"file.txt\r\n").await.unwrap();
    let mut seen = [0u8; 10];
    timeout(WAIT, w.user_screen.read_exact(&mut seen))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&seen, b"file.txt\r\n");

    // The agent exits: its output closes, while the user's stdin is still open.
    drop(w.agent_stdout);
    let stats = timeout(WAIT, pumping).await.unwrap().unwrap().unwrap();
    assert_eq!(
        stats,
        PumpStats {
            to_remote: 3,
            from_remote: 10
        }
    );
}

#[tokio::test]
async fn stdin_eof_reaches_the_agent_and_its_output_is_still_drained() {
    let (mut w, (i, o, ri, ro)) = wire();
    let pumping = tokio::spawn(pump(i, o, ri, ro));
    w.user_keys.write_all(b"abc").await.unwrap();
    drop(w.user_keys);

    let mut all = Vec::new();
    timeout(WAIT, w.agent_stdin.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all, b"abc", "agent sees the input, then EOF");

    w.agent_stdout.write_all(b"bye").await.unwrap();
    drop(w.agent_stdout);
    let mut screen = Vec::new();
    timeout(WAIT, w.user_screen.read_to_end(&mut screen))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(screen, b"bye");
    let stats = timeout(WAIT, pumping).await.unwrap().unwrap().unwrap();
    assert_eq!(stats.from_remote, 3);
}

#[tokio::test]
async fn a_megabyte_each_way_arrives_intact() {
    let (w, (i, o, ri, ro)) = wire();
    let pumping = tokio::spawn(pump(i, o, ri, ro));
    let data: Vec<u8> = (0..1_048_576u32).map(|n| (n * 7 % 251) as u8).collect();

    let Wires {
        mut user_keys,
        mut user_screen,
        mut agent_stdin,
        mut agent_stdout,
    } = w;
    let up = data.clone();
    let send_keys = tokio::spawn(async move {
        user_keys.write_all(&up).await.unwrap();
        user_keys.shutdown().await.unwrap();
        user_keys
    });
    // The agent echoes everything back, then exits when its input ends.
    let agent = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = agent_stdin.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            agent_stdout.write_all(&buf[..n]).await.unwrap();
        }
    });
    let mut screen = Vec::new();
    timeout(WAIT, user_screen.read_to_end(&mut screen))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(screen.len(), data.len());
    assert!(screen == data);
    timeout(WAIT, agent).await.unwrap().unwrap();
    let _keys = send_keys.await.unwrap();
    let stats = timeout(WAIT, pumping).await.unwrap().unwrap().unwrap();
    assert_eq!(stats.to_remote, data.len() as u64);
    assert_eq!(stats.from_remote, data.len() as u64);
}

#[tokio::test]
async fn a_closed_stdout_is_an_error_naming_the_direction() {
    let (w, (i, o, ri, ro)) = wire();
    let pumping = tokio::spawn(pump(i, o, ri, ro));
    drop(w.user_screen);
    let mut agent_stdout = w.agent_stdout;
    agent_stdout.write_all(b"lost").await.unwrap();
    let err = timeout(WAIT, pumping).await.unwrap().unwrap().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("attach stream (agent to stdout): "),
        "{err}"
    );
}

#[tokio::test]
async fn thread_reader_delivers_a_blocking_source() {
    let data = b"typed in a blocking world".repeat(2000);
    let mut r = thread_reader(std::io::Cursor::new(data.clone())).unwrap();
    let mut got = Vec::new();
    timeout(WAIT, r.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, data);
}

#[tokio::test]
async fn resize_events_start_with_the_size_and_follow_sigwinch() {
    let size = Arc::new(Mutex::new((80u16, 24u16)));
    let source = size.clone();
    let mut events = resize_events_with(move || Ok(*source.lock().unwrap())).unwrap();
    assert_eq!(timeout(WAIT, events.next()).await.unwrap(), Some((80, 24)));

    *size.lock().unwrap() = (132, 43);
    signal_hook::low_level::raise(signal_hook::consts::SIGWINCH).unwrap();
    assert_eq!(timeout(WAIT, events.next()).await.unwrap(), Some((132, 43)));

    *size.lock().unwrap() = (100, 30);
    signal_hook::low_level::raise(signal_hook::consts::SIGWINCH).unwrap();
    assert_eq!(timeout(WAIT, events.next()).await.unwrap(), Some((100, 30)));
}
