//! Event arguments: raw JSON values plus binary attachments, shared by the
//! server and the client.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use super::packet::{event_array, placeholder, resolve_placeholder};

/// The arguments of an event or an acknowledgement.
///
/// Values stay raw JSON (forwarding them costs no re-serialisation); binary
/// values are placeholders (`{"_placeholder":true,"num":N}`) that index
/// [`Args::attachments`], whatever the parser (JSON or msgpack).
///
/// ```
/// let mut args = tether_proto::socketio::Args::new();
/// args.push(&"hello").unwrap();
/// args.push_binary(vec![1u8, 2, 3]);
/// assert_eq!(args.len(), 2);
/// assert_eq!(args.get::<String>(0).unwrap(), "hello");
/// assert_eq!(args.binary(1).map(|b| b.len()), Some(3));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Args {
    values: Vec<Box<RawValue>>,
    attachments: Vec<Bytes>,
}

/// Why an argument could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgError {
    /// There is no argument at that position.
    #[error("no argument at position {0}")]
    Missing(usize),
    /// The argument has another shape than the requested type.
    #[error("argument does not match the requested type: {0}")]
    Type(#[from] serde_json::Error),
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

    /// Appends a binary value (sent as an attachment).
    pub fn push_binary(&mut self, bytes: impl Into<Bytes>) {
        self.values.push(placeholder(self.attachments.len()));
        self.attachments.push(bytes.into());
    }

    /// Adds an attachment and returns the placeholder that stands for it, to
    /// nest binary values inside a JSON argument.
    ///
    /// ```
    /// let mut args = tether_proto::socketio::Args::new();
    /// let a = args.attach(vec![1u8]);
    /// let b = args.attach(vec![2u8, 3]);
    /// args.push(&serde_json::json!({ "a": a, "b": [b, "str"] })).unwrap();
    /// let v = args.value_with_binary(0).unwrap();
    /// assert_eq!(v["b"][0], serde_json::json!([2, 3]));
    /// ```
    pub fn attach(&mut self, bytes: impl Into<Bytes>) -> serde_json::Value {
        let num = self.attachments.len();
        self.attachments.push(bytes.into());
        serde_json::json!({ "_placeholder": true, "num": num })
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
    /// use tether_proto::socketio::IntoArgs;
    /// let args = ("a", 2).into_args().unwrap();
    /// let (s, n): (String, u32) = args.parse().unwrap();
    /// assert_eq!((s.as_str(), n), ("a", 2));
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ArgError> {
        let array = event_array(None, &self.values);
        Ok(serde_json::from_str(array.get())?)
    }

    /// The bytes of argument `i`, if it is a binary value.
    pub fn binary(&self, i: usize) -> Option<&Bytes> {
        let num = resolve_placeholder(self.values.get(i)?)?;
        self.attachments.get(num)
    }

    /// Argument `i` as a JSON value in which every binary value is replaced
    /// by an array of its bytes (for inspection and tests).
    pub fn value_with_binary(&self, i: usize) -> Result<serde_json::Value, ArgError> {
        let mut value: serde_json::Value = self.get(i)?;
        self.inline(&mut value);
        Ok(value)
    }

    fn inline(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        if let Some(bytes) = placeholder_num(value).and_then(|n| self.attachments.get(n)) {
            *value = Value::Array(bytes.iter().map(|&b| Value::from(b)).collect());
            return;
        }
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| self.inline(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.inline(v)),
            _ => {}
        }
    }

    /// The last argument, when it is a string (where Socket.IO puts the
    /// recovery offset).
    pub fn last_str(&self) -> Option<String> {
        serde_json::from_str(self.values.last()?.get()).ok()
    }

    /// Removes and returns the last argument.
    pub fn pop(&mut self) -> Option<Box<RawValue>> {
        self.values.pop()
    }

    /// The raw values and the attachments.
    pub fn into_parts(self) -> (Vec<Box<RawValue>>, Vec<Bytes>) {
        (self.values, self.attachments)
    }
}

fn placeholder_num(value: &serde_json::Value) -> Option<usize> {
    let map = value.as_object()?;
    if map.len() == 2 && map.get("_placeholder")?.as_bool()? {
        usize::try_from(map.get("num")?.as_u64()?).ok()
    } else {
        None
    }
}

/// Values that can be sent as event arguments: [`Args`], `()` and tuples of
/// serialisable values (each element is one argument).
///
/// ```
/// use tether_proto::socketio::IntoArgs;
/// let args = ("hello", 42, vec![1, 2]).into_args().unwrap();
/// assert_eq!(args.len(), 3);
/// ```
pub trait IntoArgs {
    /// Converts into arguments.
    fn into_args(self) -> Result<Args, serde_json::Error>;
}

impl IntoArgs for Args {
    fn into_args(self) -> Result<Args, serde_json::Error> {
        Ok(self)
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Result<Args, serde_json::Error> {
        Ok(Args::new())
    }
}

macro_rules! tuple_args {
    ($($name:ident),+) => {
        impl<$($name: Serialize),+> IntoArgs for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Result<Args, serde_json::Error> {
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
tuple_args!(A, B, C, D, E, F, G);
tuple_args!(A, B, C, D, E, F, G, H);
