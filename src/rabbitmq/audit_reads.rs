//! The reads of the reliability audit (`crate::audit`): consumers, channels, exchanges and
//! bindings, with their response types. Each asks only for the columns the checks use
//! (`columns=`); channels and exchanges are paged like the queue listing (the API pages them),
//! consumers and bindings are read in one request (the API does not page them). Each read
//! keeps at most `max_objects` objects and counts the rest ([`Listed::dropped`]).

use serde::Deserialize;

use super::model::{Page, lenient};
use super::{Body, Client, Endpoint, Error};

/// Objects requested per page of the paged audit listings (`/api/channels`,
/// `/api/exchanges`): the management API's maximum, 500.
pub const PAGE_SIZE: u32 = 500;

/// The objects of one audit read, at most `max_objects` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    /// The objects kept, in the API's order.
    pub items: Vec<T>,
    /// Objects the API returned beyond the cap (not kept, not audited).
    pub dropped: u64,
}

/// `queue` of a consumer: the queue it consumes from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct QueueRef {
    /// `name` of the queue.
    pub name: String,
    /// `vhost` of the queue.
    pub vhost: String,
}

/// `channel_details` of a consumer: the channel it was created on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChannelRef {
    /// `name`, e.g. `127.0.0.1:50642 -> 127.0.0.1:5672 (1)`.
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
}

/// One element of `GET /api/consumers` (see [`CONSUMER_COLUMNS`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Consumer {
    /// `queue`: the queue consumed from.
    pub queue: QueueRef,
    /// `consumer_tag`.
    #[serde(deserialize_with = "lenient")]
    pub consumer_tag: Option<String>,
    /// `ack_required`: false for a consumer in automatic acknowledgement mode (`no_ack`).
    #[serde(deserialize_with = "lenient")]
    pub ack_required: Option<bool>,
    /// `prefetch_count`: the consumer's prefetch limit (basic.qos); 0 means unlimited.
    #[serde(deserialize_with = "lenient")]
    pub prefetch_count: Option<u64>,
    /// `channel_details`: the consumer's channel.
    #[serde(deserialize_with = "lenient")]
    pub channel_details: Option<ChannelRef>,
}

/// The fields of `/api/consumers` the audit asks for.
pub const CONSUMER_COLUMNS: &str =
    "queue.name,queue.vhost,consumer_tag,ack_required,prefetch_count,channel_details.name";

/// `message_stats` of a channel: what it published.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChannelStats {
    /// `publish`: messages published on the channel since it opened.
    #[serde(deserialize_with = "lenient")]
    pub publish: Option<u64>,
    /// `publish_details`: the publish rate.
    #[serde(deserialize_with = "lenient")]
    pub publish_details: Option<Rate>,
}

/// A `*_details` object: the rate of a counter.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Rate {
    /// `rate`: per second, over the management plugin's sample interval.
    #[serde(deserialize_with = "lenient")]
    pub rate: Option<f64>,
}

/// One element of `GET /api/channels` (see [`CHANNEL_COLUMNS`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Channel {
    /// `name`, e.g. `127.0.0.1:50642 -> 127.0.0.1:5672 (1)`.
    pub name: String,
    /// `vhost` the channel's connection is in.
    pub vhost: String,
    /// `user` that opened the connection.
    #[serde(deserialize_with = "lenient")]
    pub user: Option<String>,
    /// `confirm`: whether the channel is in publisher-confirm mode.
    #[serde(deserialize_with = "lenient")]
    pub confirm: Option<bool>,
    /// `transactional`: whether the channel is in transaction mode (tx.select).
    #[serde(deserialize_with = "lenient")]
    pub transactional: Option<bool>,
    /// `global_prefetch_count`: the channel-wide prefetch limit (basic.qos global), 0 = none.
    #[serde(deserialize_with = "lenient")]
    pub global_prefetch_count: Option<u64>,
    /// `message_stats`: absent until the channel did something, and when statistics are off.
    #[serde(deserialize_with = "lenient")]
    pub message_stats: Option<ChannelStats>,
}

/// The fields of `/api/channels` the audit asks for.
pub const CHANNEL_COLUMNS: &str = "name,vhost,user,confirm,transactional,global_prefetch_count,message_stats.publish,message_stats.publish_details";

/// One element of `GET /api/exchanges` (see [`EXCHANGE_COLUMNS`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Exchange {
    /// `vhost` of the exchange.
    pub vhost: String,
    /// `name` of the exchange (`""` is the default exchange).
    pub name: String,
}

/// The fields of `/api/exchanges` the audit asks for.
pub const EXCHANGE_COLUMNS: &str = "vhost,name";

/// One element of `GET /api/bindings` (see [`BINDING_COLUMNS`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BindingRow {
    /// `vhost` of the binding.
    pub vhost: String,
    /// `source`: the exchange messages come from (`""`: the default exchange).
    pub source: String,
    /// `destination`: the queue or exchange bound.
    pub destination: String,
    /// `destination_type`: `queue` or `exchange`.
    pub destination_type: String,
}

/// The fields of `/api/bindings` the audit asks for.
pub const BINDING_COLUMNS: &str = "vhost,source,destination,destination_type";

impl Client {
    /// Reads `GET /api/consumers?columns=…` (one request: the API does not page consumers),
    /// keeping at most `max_objects` (0: no limit).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Consumers`].
    pub async fn consumers(&self, max_objects: u64) -> Result<Body<Listed<Consumer>>, Error> {
        self.unpaged(Endpoint::Consumers, CONSUMER_COLUMNS, max_objects)
            .await
    }

    /// Reads `GET /api/channels?columns=…`, [`PAGE_SIZE`] per page, keeping at most
    /// `max_objects` (0: no limit; no page is read past the cap).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Channels`].
    pub async fn channels(&self, max_objects: u64) -> Result<Body<Listed<Channel>>, Error> {
        self.paged(Endpoint::Channels, CHANNEL_COLUMNS, max_objects)
            .await
    }

    /// Reads `GET /api/exchanges?columns=vhost,name`, paged like [`Client::channels`].
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Exchanges`].
    pub async fn exchanges(&self, max_objects: u64) -> Result<Body<Listed<Exchange>>, Error> {
        self.paged(Endpoint::Exchanges, EXCHANGE_COLUMNS, max_objects)
            .await
    }

    /// Reads `GET /api/bindings?columns=…` (one request: the API does not page bindings),
    /// keeping at most `max_objects` (0: no limit).
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::AllBindings`].
    pub async fn bindings(&self, max_objects: u64) -> Result<Body<Listed<BindingRow>>, Error> {
        self.unpaged(Endpoint::AllBindings, BINDING_COLUMNS, max_objects)
            .await
    }

    /// One unpaged listing of `endpoint` with `columns`, cut at `max_objects`.
    async fn unpaged<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        columns: &str,
        max_objects: u64,
    ) -> Result<Body<Listed<T>>, Error> {
        let url = self.endpoint_url(endpoint)?;
        let body: Body<Vec<T>> = self
            .get_json(endpoint, url, &[("columns", columns.to_owned())], &[])
            .await?;
        let mut items = body.value;
        let dropped = cut(&mut items, max_objects);
        Ok(Body {
            value: Listed { items, dropped },
            bytes: body.bytes,
        })
    }

    /// A paged listing of `endpoint` with `columns`, stopping at `max_objects`.
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        columns: &str,
        max_objects: u64,
    ) -> Result<Body<Listed<T>>, Error> {
        let url = self.endpoint_url(endpoint)?;
        let mut bytes = 0;
        let mut items = Vec::new();
        let mut dropped = 0u64;
        let mut page = 1u64;
        loop {
            let query = [
                ("page_size", PAGE_SIZE.to_string()),
                ("pagination", "true".to_owned()),
                ("columns", columns.to_owned()),
                ("page", page.to_string()),
            ];
            let p: Page<T> = match self.get_json(endpoint, url.clone(), &query, &[]).await {
                Ok(body) => {
                    bytes += body.bytes;
                    body.value
                }
                // Objects went away since the first page.
                Err(Error::Status {
                    status: 400, body, ..
                }) if page > 1 && body.contains("page_out_of_range") => break,
                Err(e) => return Err(e),
            };
            items.extend(p.items);
            dropped += cut(&mut items, max_objects);
            if page >= p.page_count {
                break;
            }
            if max_objects > 0 && items.len() as u64 >= max_objects {
                // The pages not read are dropped too: about a page size each.
                dropped += (p.page_count - page) * u64::from(PAGE_SIZE);
                break;
            }
            page += 1;
        }
        Ok(Body {
            value: Listed { items, dropped },
            bytes,
        })
    }
}

/// Truncates `items` to `max` (0: no limit) and returns how many were removed.
fn cut<T>(items: &mut Vec<T>, max: u64) -> u64 {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if max == 0 || items.len() <= max {
        return 0;
    }
    let removed = items.len() - max;
    items.truncate(max);
    removed as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_and_channels_decode_leniently() {
        let c: Vec<Consumer> = serde_json::from_str(
            r#"[{"queue":{"name":"q","vhost":"/"},"consumer_tag":"t","ack_required":false,
                "prefetch_count":"odd","channel_details":{"name":"c (1)"}}]"#,
        )
        .expect("decode");
        assert_eq!(c[0].queue.name, "q");
        assert_eq!(c[0].ack_required, Some(false));
        assert_eq!(c[0].prefetch_count, None, "an odd field reads as unknown");
        let ch: Vec<Channel> = serde_json::from_str(
            r#"[{"name":"c (1)","vhost":"/","confirm":false,"transactional":false,
                "message_stats":{"publish":5,"publish_details":{"rate":1.5}}},
               {"name":"c (2)","vhost":"/"}]"#,
        )
        .expect("decode");
        let stats = ch[0].message_stats.as_ref().expect("stats");
        assert_eq!(stats.publish, Some(5));
        assert_eq!(
            stats.publish_details.as_ref().and_then(|r| r.rate),
            Some(1.5)
        );
        assert_eq!(ch[1].message_stats, None);
    }

    #[test]
    fn cut_counts_what_it_drops() {
        let mut v = vec![1, 2, 3];
        assert_eq!(cut(&mut v, 0), 0);
        assert_eq!(cut(&mut v, 5), 0);
        assert_eq!(cut(&mut v, 2), 1);
        assert_eq!(v, vec![1, 2]);
    }
}
