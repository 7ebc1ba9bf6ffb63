// Package civogo stands in for the Civo API client, which the module proxy does not serve:
// external-dns compiles against it, and its civo provider fails at start-up.
package civogo

import "errors"

var errUnavailable = errors.New("civogo: the Civo API client is not part of this build")

// DNSRecordType is the type of a DNS record.
type DNSRecordType string

const (
	DNSRecordTypeA     DNSRecordType = "A"
	DNSRecordTypeCName DNSRecordType = "CNAME"
	DNSRecordTypeMX    DNSRecordType = "MX"
	DNSRecordTypeSRV   DNSRecordType = "SRV"
	DNSRecordTypeTXT   DNSRecordType = "TXT"
)

// DNSDomain is a domain (zone).
type DNSDomain struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Name      string `json:"name"`
}

// DNSRecord is a record in a domain.
type DNSRecord struct {
	ID          string        `json:"id"`
	AccountID   string        `json:"account_id,omitempty"`
	DNSDomainID string        `json:"domain_id,omitempty"`
	Name        string        `json:"name,omitempty"`
	Value       string        `json:"value,omitempty"`
	Type        DNSRecordType `json:"type,omitempty"`
	Priority    int           `json:"priority,omitempty"`
	TTL         int           `json:"ttl,omitempty"`
}

// DNSRecordConfig describes a record to create or update.
type DNSRecordConfig struct {
	Type     DNSRecordType `json:"type"`
	Name     string        `json:"name"`
	Value    string        `json:"value"`
	Priority int           `json:"priority"`
	TTL      int           `json:"ttl"`
}

// Component names the program that uses the client, for its User-Agent.
type Component struct {
	ID      string
	Name    string
	Version string
}

// SimpleResponse is the body of a write that returns no object.
type SimpleResponse struct {
	ID     string `json:"id"`
	Result string `json:"result"`
}

// Client is the API client.
type Client struct{}

// NewClient fails: there is no Civo API client in this build.
func NewClient(apiKey, region string) (*Client, error) { return nil, errUnavailable }

// SetUserAgent does nothing.
func (c *Client) SetUserAgent(component *Component) {}

func (c *Client) ListDNSDomains() ([]DNSDomain, error) { return nil, errUnavailable }

func (c *Client) ListDNSRecords(dnsDomainID string) ([]DNSRecord, error) {
	return nil, errUnavailable
}

func (c *Client) CreateDNSRecord(domainID string, r *DNSRecordConfig) (*DNSRecord, error) {
	return nil, errUnavailable
}

func (c *Client) UpdateDNSRecord(r *DNSRecord, rc *DNSRecordConfig) (*DNSRecord, error) {
	return nil, errUnavailable
}

func (c *Client) DeleteDNSRecord(r *DNSRecord) (*SimpleResponse, error) {
	return nil, errUnavailable
}
