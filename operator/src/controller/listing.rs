//! How a watcher lists its kind: streamed (a watch with `sendInitialEvents`, Kubernetes'
//! WatchList) or in pages, and when it switches between the two.

use kube::runtime::watcher;

/// How a watcher lists: `metrics` counts lists by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    Streaming,
    Pages,
}

impl Listing {
    pub fn as_str(self) -> &'static str {
        match self {
            Listing::Streaming => "streaming",
            Listing::Pages => "pages",
        }
    }

    pub fn config(self, page_size: u32) -> watcher::Config {
        match self {
            Listing::Streaming => watcher::Config::default().streaming_lists(),
            Listing::Pages => watcher::Config::default().page_size(page_size),
        }
    }
}

/// Whether the API server refused a streaming list: it validates the request before the
/// watch starts and answers 422 Invalid ("sendInitialEvents is forbidden for watch unless the
/// WatchList feature gate is enabled"); 400 for servers that reject the parameter otherwise.
fn refuses_streaming(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if s.code == 422 || s.code == 400)
}

/// Which way the next list goes. Streamed, unless the API server refuses it (then in pages for
/// good) or a streamed list broke off before its end (a connection cut: then the next list goes
/// in pages, one short request at a time, as client-go does, because making progress beats
/// restarting a long stream; the list after that is streamed again).
#[derive(Debug)]
pub struct Lists {
    pub how: Listing,
    refused: bool,
    /// A list is under way (between Init and InitDone).
    open: bool,
}

impl Lists {
    pub fn new() -> Self {
        Lists {
            how: Listing::Streaming,
            refused: false,
            open: false,
        }
    }

    /// What `ev` means for the way of listing: `Some` when the watch must start again that way.
    pub fn next<K>(&mut self, ev: &Result<watcher::Event<K>, watcher::Error>) -> Option<Listing> {
        let streaming = self.how == Listing::Streaming;
        let switch = match ev {
            Err(e) if streaming && refuses_streaming(e) => {
                self.refused = true;
                Some(Listing::Pages)
            }
            // A streamed list that errs or starts over before its end.
            Err(_) | Ok(watcher::Event::Init) if streaming && self.open => Some(Listing::Pages),
            // History compacted after a paged list: the watcher lists again anyway.
            Err(watcher::Error::WatchError(s))
                if !streaming && !self.refused && !self.open && s.code == 410 =>
            {
                Some(Listing::Streaming)
            }
            Ok(watcher::Event::Init) => {
                self.open = true;
                None
            }
            Ok(watcher::Event::InitDone) => {
                self.open = false;
                None
            }
            _ => None,
        };
        if let Some(how) = switch {
            self.how = how;
            // The new watch starts with a list (its own Init).
            self.open = false;
        }
        switch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    type Ev = Result<watcher::Event<()>, watcher::Error>;

    fn status(code: u16) -> Box<Status> {
        Box::new(Status::failure("x", "y").with_code(code))
    }
    fn start_failed(code: u16) -> Ev {
        Err(watcher::Error::WatchStartFailed(kube::Error::Api(status(
            code,
        ))))
    }
    fn init() -> Ev {
        Ok(watcher::Event::Init)
    }
    fn item() -> Ev {
        Ok(watcher::Event::InitApply(()))
    }
    fn done() -> Ev {
        Ok(watcher::Event::InitDone)
    }
    fn gone() -> Ev {
        Err(watcher::Error::WatchError(status(410)))
    }

    #[test]
    fn a_refused_streaming_list_goes_to_pages_for_good() {
        let mut l = Lists::new();
        assert_eq!(
            l.next(&start_failed(503)),
            None,
            "a transient error retries"
        );
        assert_eq!(l.next(&start_failed(422)), Some(Listing::Pages));
        for ev in [init(), done(), gone()] {
            assert_eq!(l.next(&ev), None);
        }
        assert_eq!(l.how, Listing::Pages);
    }

    #[test]
    fn a_streamed_list_that_breaks_off_is_followed_by_one_in_pages() {
        let mut l = Lists::new();
        assert_eq!(l.next(&init()), None);
        assert_eq!(l.next(&item()), None);
        // The stream ended before its end: the watcher starts a new list.
        assert_eq!(l.next(&init()), Some(Listing::Pages));
        assert_eq!(l.next(&init()), None);
        assert_eq!(
            l.next(&gone()),
            None,
            "a paged list that fails goes on in pages"
        );
        assert_eq!(l.next(&init()), None);
        assert_eq!(l.next(&done()), None);
        // Listed: the next list (after a 410) is streamed again.
        assert_eq!(l.next(&gone()), Some(Listing::Streaming));
        assert_eq!(l.next(&init()), None);
        assert_eq!(l.next(&gone()), Some(Listing::Pages));
    }

    #[test]
    fn a_streamed_watch_that_ends_after_its_list_just_resumes() {
        let mut l = Lists::new();
        for ev in [
            init(),
            done(),
            Err(watcher::Error::WatchFailed(kube::Error::Api(status(500)))),
            gone(),
            init(),
            done(),
        ] {
            assert_eq!(l.next(&ev), None, "{ev:?}");
        }
        assert_eq!(l.how, Listing::Streaming);
    }
}
