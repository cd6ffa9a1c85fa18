//! A safe wrapper around libyaml's event parser. go-yaml, which kubectl and the API server use,
//! is a port of this parser, so a text is split into nodes the way Kubernetes splits it; the
//! meaning of each scalar is decided by [`super::yaml`].

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use unsafe_libyaml_norway as unsafe_libyaml;

/// The node properties the reader uses.
#[derive(Debug, Default)]
pub(super) struct Props {
    pub anchor: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(super) struct Scalar {
    pub props: Props,
    pub value: Vec<u8>,
    /// No tag and plain style: the value is resolved (`yes` is a boolean, `0777` a number).
    pub plain_implicit: bool,
}

#[derive(Debug)]
pub(super) enum Event {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias(Vec<u8>),
    Scalar(Scalar),
    SequenceStart(Props),
    SequenceEnd,
    MappingStart(Props),
    MappingEnd,
}

/// Where an event starts: its 0-based line.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Mark {
    pub line: usize,
}

pub(super) struct Parser<'input> {
    // Boxed: libyaml keeps a pointer to the parser itself (its read handler's data).
    raw: Box<unsafe_libyaml::yaml_parser_t>,
    _input: PhantomData<&'input [u8]>,
}

impl<'input> Parser<'input> {
    /// `None` only when libyaml cannot allocate its buffers.
    pub fn new(input: &'input [u8]) -> Option<Parser<'input>> {
        let mut raw: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>> =
            Box::new(MaybeUninit::uninit());
        // SAFETY: `yaml_parser_initialize` zeroes and initializes the whole struct before it is
        // read; on failure it has freed what it allocated. The input outlives the parser
        // (`'input`), and the box keeps the parser at one address for its whole life.
        unsafe {
            if !unsafe_libyaml::yaml_parser_initialize(raw.as_mut_ptr()).ok {
                return None;
            }
            unsafe_libyaml::yaml_parser_set_encoding(
                raw.as_mut_ptr(),
                unsafe_libyaml::YAML_UTF8_ENCODING,
            );
            unsafe_libyaml::yaml_parser_set_input_string(
                raw.as_mut_ptr(),
                input.as_ptr(),
                input.len() as _,
            );
            Some(Parser {
                raw: Box::from_raw(Box::into_raw(raw).cast::<unsafe_libyaml::yaml_parser_t>()),
                _input: PhantomData,
            })
        }
    }

    /// The next event; `Err` on a syntax error (libyaml's message is not exposed: the caller
    /// describes it).
    pub fn next_event(&mut self) -> Result<(Event, Mark), Mark> {
        let mut event = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser is initialized; on success `yaml_parser_parse` initializes the
        // event, which is converted (copying every string out) before `yaml_event_delete`.
        unsafe {
            let parser: *mut unsafe_libyaml::yaml_parser_t = &mut *self.raw;
            if !unsafe_libyaml::yaml_parser_parse(parser, event.as_mut_ptr()).ok {
                return Err(Mark::default());
            }
            let event = event.as_mut_ptr();
            let mark = Mark {
                line: (*event).start_mark.line as usize,
            };
            let converted = convert(&*event);
            unsafe_libyaml::yaml_event_delete(event);
            Ok((converted, mark))
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`; deleted once, here.
        unsafe { unsafe_libyaml::yaml_parser_delete(&mut *self.raw) }
    }
}

/// # Safety
/// `event` must be an event initialized by `yaml_parser_parse`.
unsafe fn convert(event: &unsafe_libyaml::yaml_event_t) -> Event {
    // SAFETY (whole body): the union member read is the one `type_` says is set; libyaml's
    // strings are NUL-terminated or, for scalar values, `length` bytes long.
    unsafe {
        match event.type_ {
            unsafe_libyaml::YAML_STREAM_START_EVENT => Event::StreamStart,
            unsafe_libyaml::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
            unsafe_libyaml::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd,
            unsafe_libyaml::YAML_ALIAS_EVENT => {
                Event::Alias(cstr(event.data.alias.anchor).unwrap_or_default())
            }
            unsafe_libyaml::YAML_SCALAR_EVENT => {
                let s = &event.data.scalar;
                let value = if s.value.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(s.value, s.length as usize).to_vec()
                };
                Event::Scalar(Scalar {
                    props: Props {
                        anchor: cstr(s.anchor),
                        tag: cstr(s.tag),
                    },
                    value,
                    plain_implicit: s.plain_implicit,
                })
            }
            unsafe_libyaml::YAML_SEQUENCE_START_EVENT => Event::SequenceStart(Props {
                anchor: cstr(event.data.sequence_start.anchor),
                tag: cstr(event.data.sequence_start.tag),
            }),
            unsafe_libyaml::YAML_SEQUENCE_END_EVENT => Event::SequenceEnd,
            unsafe_libyaml::YAML_MAPPING_START_EVENT => Event::MappingStart(Props {
                anchor: cstr(event.data.mapping_start.anchor),
                tag: cstr(event.data.mapping_start.tag),
            }),
            unsafe_libyaml::YAML_MAPPING_END_EVENT => Event::MappingEnd,
            // The stream end, and the "no event" libyaml never returns on success.
            _ => Event::StreamEnd,
        }
    }
}

/// # Safety
/// `ptr` is null or points to a NUL-terminated string.
unsafe fn cstr(ptr: *const u8) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: per the contract above.
    Some(
        unsafe { std::ffi::CStr::from_ptr(ptr.cast()) }
            .to_bytes()
            .to_vec(),
    )
}
