// Package mastodonenv reads the environment variables of Mastodon's Node.js
// streaming server (streaming/index.js, database.js, redis.js, logging.js)
// and turns them into Go configuration: the .env file rule, the Redis
// connection and namespace, the PostgreSQL pool, the listen address and the
// log level.
//
// Everything here is pure except LoadDotenv, which reads one file. Variables
// are read through an Env (os.LookupEnv or MapEnv in tests) so presence can
// be told apart from emptiness where Mastodon does (BIND, the sentinel
// credentials). Error messages follow Mastodon's wording where it has one
// ("Invalid DB_PORT environment variable: abc"), so operators see the same
// startup failure; every error names the variable it is about. Values that
// may carry secrets (REDIS_URL, DATABASE_URL, passwords) are never echoed.
package mastodonenv
