// Package config holds the admin's policy: where state lives, which pools
// exist, what each pool may hold and which tenants may use it.
//
// Parsing and validation are pure (bytes in, *Config or an error naming the
// offending key out). With no config file the embedded default serves: state
// under /var/lib/mooring and one loop pool named "default". Load only reads
// the file the admin named (flag, then $MOORING_CONFIG, then
// /etc/mooring/config.toml).
package config
