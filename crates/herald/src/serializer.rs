//! Turning application keys and values into bytes.
//!
//! A [`Serializer`] runs inside `send`, before partitioning (the partition
//! of a keyed record depends on the key's bytes). A serializer error comes
//! back from `send` at once and nothing is sent.

use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;

use crate::delivery::DeliveryFuture;
use crate::error::Error;
use crate::producer::Producer;
use crate::record::{Record, RecordMetadata};

/// Turns a `T` into the bytes of a key or value.
pub trait Serializer<T: ?Sized>: Send + Sync {
    /// Serialize `data`, bound for `topic`.
    fn serialize(&self, topic: &str, data: &T) -> Result<Bytes, Error>;
}

/// Bytes as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct BytesSerializer;

impl<T: AsRef<[u8]> + ?Sized> Serializer<T> for BytesSerializer {
    fn serialize(&self, _topic: &str, data: &T) -> Result<Bytes, Error> {
        Ok(Bytes::copy_from_slice(data.as_ref()))
    }
}

/// Strings as UTF-8.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringSerializer;

impl<T: AsRef<str> + ?Sized> Serializer<T> for StringSerializer {
    fn serialize(&self, _topic: &str, data: &T) -> Result<Bytes, Error> {
        Ok(Bytes::copy_from_slice(data.as_ref().as_bytes()))
    }
}

/// Any `serde::Serialize` type as JSON.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSerializer;

impl<T: Serialize + ?Sized> Serializer<T> for JsonSerializer {
    fn serialize(&self, topic: &str, data: &T) -> Result<Bytes, Error> {
        serde_json::to_vec(data)
            .map(Bytes::from)
            .map_err(|e| Error::Serialization(format!("JSON for topic `{topic}`: {e}")))
    }
}

/// A producer of `Record<K, V>`, serializing keys with `KS` and values with `VS`.
pub struct TypedProducer<K, V, KS, VS> {
    producer: Producer,
    key_serializer: KS,
    value_serializer: VS,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V, KS, VS> std::fmt::Debug for TypedProducer<K, V, KS, VS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .finish()
    }
}

impl<K, V, KS: Clone, VS: Clone> Clone for TypedProducer<K, V, KS, VS> {
    fn clone(&self) -> Self {
        Self {
            producer: self.producer.clone(),
            key_serializer: self.key_serializer.clone(),
            value_serializer: self.value_serializer.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V, KS, VS> TypedProducer<K, V, KS, VS>
where
    KS: Serializer<K>,
    VS: Serializer<V>,
{
    /// Wrap a producer with serializers.
    pub fn new(producer: Producer, key_serializer: KS, value_serializer: VS) -> Self {
        Self {
            producer,
            key_serializer,
            value_serializer,
            _types: PhantomData,
        }
    }

    /// The underlying producer (for `flush`, `close`).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    fn to_bytes(&self, r: Record<K, V>) -> Result<Record, Error> {
        let key = r
            .key
            .as_ref()
            .map(|k| self.key_serializer.serialize(&r.topic, k))
            .transpose()?;
        let value = r
            .value
            .as_ref()
            .map(|v| self.value_serializer.serialize(&r.topic, v))
            .transpose()?;
        Ok(Record {
            topic: r.topic,
            key,
            value,
            partition: r.partition,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }

    /// Serialize and send; see [`Producer::send`].
    pub async fn send(&self, record: Record<K, V>) -> Result<DeliveryFuture, Error> {
        let r = self.to_bytes(record)?;
        self.producer.send(r).await
    }

    /// Serialize and send with a callback; see [`Producer::send_with_callback`].
    pub async fn send_with_callback<F>(
        &self,
        record: Record<K, V>,
        callback: F,
    ) -> Result<(), Error>
    where
        F: FnOnce(Result<RecordMetadata, Error>) + Send + 'static,
    {
        let r = self.to_bytes(record)?;
        self.producer.send_with_callback(r, callback).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializers() {
        assert_eq!(
            StringSerializer.serialize("t", "hé").unwrap(),
            Bytes::from("hé")
        );
        assert_eq!(
            BytesSerializer.serialize("t", &[1u8, 2][..]).unwrap(),
            Bytes::from_static(&[1, 2])
        );
        #[derive(Serialize)]
        struct Ev {
            id: u32,
        }
        assert_eq!(
            JsonSerializer.serialize("t", &Ev { id: 7 }).unwrap(),
            Bytes::from(r#"{"id":7}"#)
        );
        // A map with non-string keys cannot be JSON: the error names the topic.
        let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let e = JsonSerializer.serialize("orders", &bad).unwrap_err();
        assert!(
            matches!(e, Error::Serialization(_)) && e.to_string().contains("orders"),
            "{e}"
        );
    }
}
