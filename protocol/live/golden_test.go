package live

// goldenID is the stream ID of the Ed25519 key made from 32 bytes 0x01
// (marshalled 080112208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c)
// and the name "camera 1"; cross-checked with an independent Python
// computation (hashlib + base32).
const goldenID = "bagaybqabciqnss26nx44g3v5jnrwc7xoehim5t3no32gzxifxn4gtsifbjebtbq"
