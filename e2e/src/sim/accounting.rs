//! Request accounting: every request the simulator serves (harness requests excepted), by
//! verb, resource and field manager, with a sequence number so tests can ask "since X".

use std::collections::BTreeMap;

/// What a request did. Patches are split by kind so applies and merges can be told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Apply,
    MergePatch,
    StrategicPatch,
    JsonPatch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// Whether the verb writes (any create, update, patch or delete).
    pub fn is_write(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }

    pub fn is_patch(self) -> bool {
        matches!(
            self,
            Verb::Apply | Verb::MergePatch | Verb::StrategicPatch | Verb::JsonPatch
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Apply => "apply",
            Verb::MergePatch => "merge-patch",
            Verb::StrategicPatch => "strategic-patch",
            Verb::JsonPatch => "json-patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// One served request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// Position in the log; `SimHandle::mark` returns the next one.
    pub seq: u64,
    pub verb: Verb,
    pub group: String,
    /// Plural, with `/status` for the subresource (`meshbaselines/status`).
    pub resource: String,
    pub namespace: String,
    pub name: String,
    /// The `fieldManager` of writes (the default manager when none was given); empty for reads.
    pub field_manager: String,
    /// A watch that lists first (`sendInitialEvents=true`): a streaming list.
    pub streaming_list: bool,
    /// HTTP status answered (for watches, the status the stream started with).
    pub code: u16,
}

/// A slice of the request log with counting helpers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestLog(pub Vec<RequestRecord>);

impl RequestLog {
    pub fn count(&self, pred: impl Fn(&RequestRecord) -> bool) -> usize {
        self.0.iter().filter(|r| pred(r)).count()
    }

    /// Write requests, whatever their outcome.
    pub fn writes(&self) -> usize {
        self.count(|r| r.verb.is_write())
    }

    /// Write requests made by one field manager.
    pub fn writes_by(&self, manager: &str) -> usize {
        self.count(|r| r.verb.is_write() && r.field_manager == manager)
    }

    /// Lists, in pages or streamed, of one resource.
    pub fn lists_of(&self, resource: &str) -> usize {
        self.count(|r| r.resource == resource && (r.verb == Verb::List || r.streaming_list))
    }

    pub fn by_verb(&self) -> BTreeMap<Verb, usize> {
        let mut out = BTreeMap::new();
        for r in &self.0 {
            *out.entry(r.verb).or_default() += 1;
        }
        out
    }

    /// Counts by (verb, resource).
    pub fn by_verb_resource(&self) -> BTreeMap<(Verb, String), usize> {
        let mut out = BTreeMap::new();
        for r in &self.0 {
            *out.entry((r.verb, r.resource.clone())).or_default() += 1;
        }
        out
    }

    pub fn records(&self) -> &[RequestRecord] {
        &self.0
    }
}

/// The request log behind the simulator's lock.
#[derive(Debug, Default)]
pub struct Accounting {
    records: Vec<RequestRecord>,
    /// Sequence number of `records[0]` (earlier ones were reset away).
    offset: u64,
}

impl Accounting {
    pub fn record(&mut self, mut r: RequestRecord) -> u64 {
        r.seq = self.offset + self.records.len() as u64;
        let seq = r.seq;
        self.records.push(r);
        seq
    }

    pub fn set_code(&mut self, seq: u64, code: u16) {
        if let Some(r) = seq
            .checked_sub(self.offset)
            .and_then(|i| self.records.get_mut(i as usize))
        {
            r.code = code;
        }
    }

    pub fn mark(&self) -> u64 {
        self.offset + self.records.len() as u64
    }

    pub fn since(&self, mark: u64) -> RequestLog {
        let start = mark.saturating_sub(self.offset) as usize;
        RequestLog(
            self.records
                .get(start..)
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
        )
    }

    /// Forgets everything recorded so far (sequence numbers keep increasing).
    pub fn reset(&mut self) {
        self.offset = self.mark();
        self.records.clear();
    }
}
