//! Event arguments: raw JSON values plus binary attachments.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use tether_proto::socketio::{placeholder, resolve_placeholder};

use crate::error::{ArgError, EmitError};
use crate::sio::socket::AckSender;

/// The arguments of an event or an acknowledgement.
///
/// Values are kept as raw JSON, so forwarding them costs no re-serialisation;
/// binary values are placeholders that index [`Args::attachments`].
///
/// ```
/// let mut args = tether::Args::new();
/// args.push(&"hello").unwrap();
/// args.push_binary(vec![1u8, 2, 3]);
/// assert_eq!(args.len(), 2);
/// assert_eq!(args.binary(1).map(|b| b.len()), Some(3));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Args {
    values: Vec<Box<RawValue>>,
    attachments: Vec<Bytes>,
}

impl Args {
    /// No argument.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arguments from raw JSON values and the attachments their placeholders index.
    pub fn from_raw(values: Vec<Box<RawValue>>, attachments: Vec<Bytes>) -> Self {
        Self {
            values,
            attachments,
        }
    }

    /// Appends a value serialised to JSON.
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.values.push(serde_json::value::to_raw_value(value)?);
        Ok(())
    }

    /// Appends a raw JSON value.
    pub fn push_raw(&mut self, value: Box<RawValue>) {
        self.values.push(value);
    }

    /// Appends the stored position of the event itself (a number), filled in
    /// when a published event is delivered, live or replayed: the chat
    /// tutorial's `serverOffset`.
    pub fn push_seq(&mut self) {
        self.values.push(crate::delivery::seq_placeholder());
    }

    /// Appends a binary value (sent as an attachment).
    pub fn push_binary(&mut self, bytes: impl Into<Bytes>) {
        self.values.push(placeholder(self.attachments.len()));
        self.attachments.push(bytes.into());
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there is no argument.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The raw JSON values.
    pub fn values(&self) -> &[Box<RawValue>] {
        &self.values
    }

    /// The binary attachments.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// Argument `i` deserialised as `T`.
    pub fn get<T: DeserializeOwned>(&self, i: usize) -> Result<T, ArgError> {
        let raw = self.values.get(i).ok_or(ArgError::Missing(i))?;
        Ok(serde_json::from_str(raw.get())?)
    }

    /// Every argument deserialised at once, as a tuple or a `Vec`.
    ///
    /// ```
    /// let mut args = tether::Args::new();
    /// args.push(&"a").unwrap();
    /// args.push(&2).unwrap();
    /// let (s, n): (String, u32) = args.parse().unwrap();
    /// assert_eq!((s.as_str(), n), ("a", 2));
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ArgError> {
        let array = tether_proto::socketio::event_array(None, &self.values);
        Ok(serde_json::from_str(array.get())?)
    }

    /// The bytes of argument `i`, if it is a binary value.
    pub fn binary(&self, i: usize) -> Option<&Bytes> {
        let num = resolve_placeholder(self.values.get(i)?)?;
        self.attachments.get(num)
    }

    /// The last argument, when it is a string (the recovery offset position).
    pub fn last_str(&self) -> Option<String> {
        serde_json::from_str(self.values.last()?.get()).ok()
    }

    pub(crate) fn into_parts(self) -> (Vec<Box<RawValue>>, Vec<Bytes>) {
        (self.values, self.attachments)
    }
}

/// Values that can be sent as event arguments: [`Args`], `()` and tuples of
/// serialisable values (each element is one argument).
///
/// ```
/// use tether::IntoArgs;
/// let args = ("hello", 42, vec![1, 2]).into_args().unwrap();
/// assert_eq!(args.len(), 3);
/// ```
pub trait IntoArgs {
    /// Converts into arguments.
    fn into_args(self) -> Result<Args, EmitError>;
}

impl IntoArgs for Args {
    fn into_args(self) -> Result<Args, EmitError> {
        Ok(self)
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Result<Args, EmitError> {
        Ok(Args::new())
    }
}

macro_rules! tuple_args {
    ($($name:ident),+) => {
        impl<$($name: Serialize),+> IntoArgs for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Result<Args, EmitError> {
                let ($($name,)+) = self;
                let mut args = Args::new();
                $(args.push(&$name)?;)+
                Ok(args)
            }
        }
    };
}

tuple_args!(A);
tuple_args!(A, B);
tuple_args!(A, B, C);
tuple_args!(A, B, C, D);
tuple_args!(A, B, C, D, E);
tuple_args!(A, B, C, D, E, F);

/// An event received from a client.
#[derive(Debug)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) args: Args,
    pub(crate) ack: Option<AckSender>,
}

impl Event {
    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Takes the arguments out (to forward them, say).
    pub fn take_args(&mut self) -> Args {
        std::mem::take(&mut self.args)
    }

    /// True when the client asked for an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the acknowledgement callback, to answer later or elsewhere.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Acknowledges the event with `args`. Does nothing if the client did not
    /// ask for an acknowledgement or it was answered already.
    pub fn ack(&mut self, args: impl IntoArgs) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(ack) => ack.send(args),
            None => Ok(()),
        }
    }
}
