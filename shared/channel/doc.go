// Package channel is the single place where Mastodon streaming channel names
// are spelled and where they are mapped to NATS subjects.
//
// A [Name] is the channel exactly as Rails publishes it to Redis, without
// REDIS_NAMESPACE (for example "timeline:public:local" or
// "timeline:hashtag:cafe"). The constructors ([Public], [Home],
// [Notifications], [Direct], [List], [Hashtag], [AccessToken], [System]) are
// the only code in Spillway that should build such strings, so that the
// spelling Rails relies on lives in one file.
//
// [NormalizeHashtag] reproduces the normalisation the Node streaming server
// applies to the tag parameter; if it differed from Rails' HashtagNormalizer
// a hashtag stream would silently never receive anything.
//
// [Subjects] maps a Name to a NATS subject with one reversible rule (see
// [Subjects.Of]) and reserves a separate control namespace for interest
// announcements ([Subjects.Interest]). Names reach it from clients (tags,
// list ids) and from Redis, so every Name must pass [CheckName] before its
// subject is subscribed to or published on: [MaxNameLen] and [MaxPrefixLen]
// keep every subject within [MaxSubjectLen], far below the control-line
// limit beyond which NATS closes a connection.
package channel
