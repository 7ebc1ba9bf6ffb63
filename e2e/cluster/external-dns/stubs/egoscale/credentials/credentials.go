// Package credentials stands in for egoscale's credentials package.
package credentials

// Credentials holds an API key and secret.
type Credentials struct{ key, secret string }

// NewStaticCredentials returns credentials that never change.
func NewStaticCredentials(key, secret string) *Credentials {
	return &Credentials{key: key, secret: secret}
}
