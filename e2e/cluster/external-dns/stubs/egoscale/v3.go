// Package v3 stands in for the Exoscale API client, which the module proxy does not serve:
// external-dns compiles against it, and its exoscale provider fails at start-up.
package v3

import (
	"context"
	"errors"

	"github.com/exoscale/egoscale/v3/credentials"
)

var errUnavailable = errors.New("egoscale: the Exoscale API client is not part of this build")

type UUID string

type Endpoint string

type OperationState string

const OperationStateSuccess OperationState = "success"

type Operation struct {
	ID    UUID           `json:"id,omitempty"`
	State OperationState `json:"state,omitempty"`
}

type DNSDomain struct {
	ID          UUID   `json:"id,omitempty"`
	UnicodeName string `json:"unicode-name,omitempty"`
}

type ListDNSDomainsResponse struct {
	DNSDomains []DNSDomain `json:"dns-domains,omitempty"`
}

type DNSDomainRecordType string

type DNSDomainRecord struct {
	ID       UUID                `json:"id,omitempty"`
	Name     string              `json:"name,omitempty"`
	Type     DNSDomainRecordType `json:"type,omitempty"`
	Content  string              `json:"content,omitempty"`
	Ttl      int64               `json:"ttl,omitempty"`
	Priority int64               `json:"priority,omitempty"`
}

type ListDNSDomainRecordsResponse struct {
	DNSDomainRecords []DNSDomainRecord `json:"dns-domain-records,omitempty"`
}

type CreateDNSDomainRecordRequestType string

type CreateDNSDomainRecordRequest struct {
	Name     string                           `json:"name"`
	Type     CreateDNSDomainRecordRequestType `json:"type"`
	Content  string                           `json:"content"`
	Ttl      int64                            `json:"ttl,omitempty"`
	Priority int64                            `json:"priority,omitempty"`
}

type UpdateDNSDomainRecordRequest struct {
	Name     string `json:"name,omitempty"`
	Content  string `json:"content,omitempty"`
	Ttl      int64  `json:"ttl,omitempty"`
	Priority int64  `json:"priority,omitempty"`
}

type Client struct{}

type ClientOpt func(*Client) error

func ClientOptWithEndpoint(endpoint Endpoint) ClientOpt { return func(*Client) error { return nil } }

// NewClient fails: there is no Exoscale API client in this build.
func NewClient(creds *credentials.Credentials, opts ...ClientOpt) (*Client, error) {
	return nil, errUnavailable
}

func (c *Client) ListDNSDomains(ctx context.Context) (*ListDNSDomainsResponse, error) {
	return nil, errUnavailable
}

func (c *Client) ListDNSDomainRecords(ctx context.Context, domainID UUID) (*ListDNSDomainRecordsResponse, error) {
	return nil, errUnavailable
}

func (c *Client) CreateDNSDomainRecord(ctx context.Context, domainID UUID, req CreateDNSDomainRecordRequest) (*Operation, error) {
	return nil, errUnavailable
}

func (c *Client) UpdateDNSDomainRecord(ctx context.Context, domainID, recordID UUID, req UpdateDNSDomainRecordRequest) (*Operation, error) {
	return nil, errUnavailable
}

func (c *Client) DeleteDNSDomainRecord(ctx context.Context, domainID, recordID UUID) (*Operation, error) {
	return nil, errUnavailable
}

func (c *Client) Wait(ctx context.Context, op *Operation, states ...OperationState) (*Operation, error) {
	return nil, errUnavailable
}
