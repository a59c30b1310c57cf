//! A minimal TCP forwarder standing in for an in-cluster AI gateway: every
//! connection to LISTEN is piped to UPSTREAM. Its `comm` is `gwproxy`.
//!
//! gwproxy LISTEN UPSTREAM
use std::{
    io::copy,
    net::{Shutdown, TcpListener, TcpStream},
    process::ExitCode,
    thread,
};

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: gwproxy LISTEN UPSTREAM");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gwproxy: bind {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready");
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        thread::spawn(move || {
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let up = thread::spawn(move || pipe(c2, s2));
            pipe(server, client);
            let _ = up.join();
        });
    }
    ExitCode::SUCCESS
}
