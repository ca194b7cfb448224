/*
 * test_s3.c - src/s3 without a server: the SigV4 signer against the
 * published AWS examples (the "get-vanilla" suite vectors and the S3
 * developer guide's GET/PUT/list examples), URI and query encoding edge
 * cases, URL building in both addressing styles, the XML parsers on good
 * and hostile input, and the error mapping.  The requests themselves are
 * checked against a real MinIO by tests/integration/test_s3.py.
 */
#include <stdlib.h>
#include <string.h>

#include "s3/s3_int.h"
#include "unit.h"

#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static const char *signature(const char *auth)
{
	const char *p = strstr(auth, "Signature=");
	return p ? p + 10 : "";
}

/* ---- SigV4 ---- */

static void test_get_vanilla(void)
{
	kt_sigv4_header h[] = { { "x-amz-date", "20150830T123600Z" },
	                        { "host", "example.amazonaws.com" } };
	kt_sigv4_req r = { "GET", "/", "", h, 2, EMPTY, "20150830T123600Z", "us-east-1", "service",
	                   "AKIDEXAMPLE", SUITE_SECRET };
	kt_buf auth, creq, sts;
	kt_error err;
	kt_buf_init(&auth, 4096);
	kt_buf_init(&creq, 4096);
	kt_buf_init(&sts, 4096);
	CHECK(kt_sigv4_sign(&r, &auth, &creq, &sts, &err) == KT_OK);
	CHECK_STR(creq.data, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
	                     "host;x-amz-date\n" EMPTY);
	CHECK_STR(sts.data, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/"
	                    "aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292"
	                    "927e63");
	CHECK_STR(auth.data, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
	                     "aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b7"
	                     "3ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	/* The secret never appears in anything we produce. */
	CHECK(!strstr(auth.data, SUITE_SECRET) && !strstr(creq.data, SUITE_SECRET) &&
	      !strstr(sts.data, SUITE_SECRET));
	kt_buf_release(&auth);
	kt_buf_release(&creq);
	kt_buf_release(&sts);
}

static void test_query_order_key_case(void)
{
	const char *names[] = { "Param2", "Param1" };
	const char *values[] = { "value2", "value1" };
	kt_buf q, auth;
	kt_error err;
	kt_buf_init(&q, 4096);
	kt_buf_init(&auth, 4096);
	CHECK(kt_s3_query(&q, names, values, 2, &err) == KT_OK);
	CHECK_STR(q.data, "Param1=value1&Param2=value2");
	kt_sigv4_header h[] = { { "host", "example.amazonaws.com" },
	                        { "x-amz-date", "20150830T123600Z" } };
	kt_sigv4_req r = { "GET", "/", q.data, h, 2, EMPTY, "20150830T123600Z", "us-east-1",
	                   "service", "AKIDEXAMPLE", SUITE_SECRET };
	CHECK(kt_sigv4_sign(&r, &auth, NULL, NULL, &err) == KT_OK);
	CHECK_STR(signature(auth.data),
	          "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	kt_buf_release(&q);
	kt_buf_release(&auth);
}

static void test_s3_guide_examples(void)
{
	kt_buf auth, uri;
	kt_error err;
	kt_buf_init(&auth, 4096);
	kt_buf_init(&uri, 4096);

	/* GET Object with a Range header. */
	kt_sigv4_header g[] = { { "host", "examplebucket.s3.amazonaws.com" },
	                        { "range", "bytes=0-9" },
	                        { "x-amz-content-sha256", EMPTY },
	                        { "x-amz-date", "20130524T000000Z" } };
	kt_sigv4_req r = { "GET", "/test.txt", "", g, 4, EMPTY, "20130524T000000Z", "us-east-1",
	                   "s3", "AKIAIOSFODNN7EXAMPLE", S3_SECRET };
	CHECK(kt_sigv4_sign(&r, &auth, NULL, NULL, &err) == KT_OK);
	CHECK_STR(signature(auth.data),
	          "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	CHECK_CONTAINS(auth.data, "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,");

	/* PUT Object: '$' in the key is encoded, the payload hash is real. */
	char ph[65];
	kt_s3_sha256_hex(ph, "Welcome to Amazon S3.", 21);
	CHECK_STR(ph, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	CHECK(kt_buf_add(&uri, "/", 1, &err) == KT_OK);
	CHECK(kt_s3_uri_encode(&uri, "test$file.text", 1, &err) == KT_OK);
	CHECK_STR(uri.data, "/test%24file.text");
	kt_sigv4_header p[] = { { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
	                        { "date", "Fri, 24 May 2013 00:00:00 GMT" },
	                        { "host", "examplebucket.s3.amazonaws.com" },
	                        { "x-amz-date", "20130524T000000Z" },
	                        { "x-amz-content-sha256", ph } };
	kt_sigv4_req rp = { "PUT", uri.data, "", p, 5, ph, "20130524T000000Z", "us-east-1", "s3",
	                    "AKIAIOSFODNN7EXAMPLE", S3_SECRET };
	CHECK(kt_sigv4_sign(&rp, &auth, NULL, NULL, &err) == KT_OK);
	CHECK_STR(signature(auth.data),
	          "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");

	/* GET Bucket (list) with a query. */
	const char *qn[] = { "prefix", "max-keys" }, *qv[] = { "J", "2" };
	kt_buf q;
	kt_buf_init(&q, 4096);
	CHECK(kt_s3_query(&q, qn, qv, 2, &err) == KT_OK);
	CHECK_STR(q.data, "max-keys=2&prefix=J");
	kt_sigv4_header l[] = { { "host", "examplebucket.s3.amazonaws.com" },
	                        { "x-amz-content-sha256", EMPTY },
	                        { "x-amz-date", "20130524T000000Z" } };
	kt_sigv4_req rl = { "GET", "/", q.data, l, 3, EMPTY, "20130524T000000Z", "us-east-1", "s3",
	                    "AKIAIOSFODNN7EXAMPLE", S3_SECRET };
	CHECK(kt_sigv4_sign(&rl, &auth, NULL, NULL, &err) == KT_OK);
	CHECK_STR(signature(auth.data),
	          "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	kt_buf_release(&q);
	kt_buf_release(&auth);
	kt_buf_release(&uri);
}

static void test_header_value_trimming(void)
{
	/* Leading/trailing blanks dropped, inner runs collapsed. */
	kt_sigv4_header h[] = { { "host", "h" }, { "x-amz-meta-a", "  a   b\tc  " } };
	kt_sigv4_req r = { "GET", "/", "", h, 2, EMPTY, "20150830T123600Z", "us-east-1", "s3",
	                   "AK", "SK" };
	kt_buf auth, creq;
	kt_error err;
	kt_buf_init(&auth, 4096);
	kt_buf_init(&creq, 4096);
	CHECK(kt_sigv4_sign(&r, &auth, &creq, NULL, &err) == KT_OK);
	CHECK_CONTAINS(creq.data, "\nx-amz-meta-a:a b c\n");
	r.amz_date = "2015";
	CHECK(kt_sigv4_sign(&r, &auth, NULL, NULL, &err) == KT_EUSAGE);
	kt_buf_release(&auth);
	kt_buf_release(&creq);
}

static void test_uri_encoding(void)
{
	kt_buf b;
	kt_error err;
	kt_buf_init(&b, 4096);
	CHECK(kt_s3_uri_encode(&b, "a b/c~d_e-f.g+h=i&j%k", 1, &err) == KT_OK);
	CHECK_STR(b.data, "a%20b/c~d_e-f.g%2Bh%3Di%26j%25k");
	kt_buf_reset(&b);
	CHECK(kt_s3_uri_encode(&b, "a/b", 0, &err) == KT_OK);
	CHECK_STR(b.data, "a%2Fb");
	kt_buf_reset(&b);
	CHECK(kt_s3_uri_encode(&b, "\xc3\xa9t\xc3\xa9*", 1, &err) == KT_OK);
	CHECK_STR(b.data, "%C3%A9t%C3%A9%2A");
	/* Query: empty values, sorting by encoded name, '/' encoded. */
	const char *n[] = { "uploads", "b", "a", "prefix" };
	const char *v[] = { NULL, "2", "x y", "dir/sub" };
	kt_buf_reset(&b);
	CHECK(kt_s3_query(&b, n, v, 4, &err) == KT_OK);
	CHECK_STR(b.data, "a=x%20y&b=2&prefix=dir%2Fsub&uploads=");
	kt_buf_release(&b);

	char d[17];
	kt_sigv4_amz_date(d, 1440938160);
	CHECK_STR(d, "20150830T123600Z");
}

/* ---- URL building ---- */

static kt_s3 *client(const char *endpoint, const char *bucket, kt_s3_style style)
{
	kt_s3_config c;
	kt_s3 *s = NULL;
	kt_error err;
	memset(&c, 0, sizeof(c));
	c.endpoint = endpoint;
	c.bucket = bucket;
	c.access_key = "AK";
	c.secret_key = "unit-test-secret";
	c.style = style;
	if (kt_s3_new(&s, &c, &err) != KT_OK) {
		fprintf(stderr, "  kt_s3_new(%s): %s\n", endpoint, err.msg);
		return NULL;
	}
	return s;
}

static void test_url_styles(void)
{
	kt_s3_url u;
	kt_error err;
	kt_s3 *s = client("http://127.0.0.1:9000", "bk", KT_S3_STYLE_AUTO);
	CHECK(s && kt_s3_style_used(s) == KT_S3_STYLE_PATH);
	if (s) {
		CHECK(kt_s3_build_url(s, "dir/a b+c", "", &u, &err) == KT_OK);
		CHECK_STR(u.url, "http://127.0.0.1:9000/bk/dir/a%20b%2Bc");
		CHECK_STR(u.host, "127.0.0.1:9000");
		CHECK_STR(u.path, "/bk/dir/a%20b%2Bc");
		CHECK(kt_s3_build_url(s, NULL, "list-type=2", &u, &err) == KT_OK);
		CHECK_STR(u.url, "http://127.0.0.1:9000/bk?list-type=2");
		CHECK_STR(u.path, "/bk");
	}
	kt_s3_free(s);

	s = client("https://s3.eu-west-1.amazonaws.com", "my-bucket", KT_S3_STYLE_AUTO);
	CHECK(s && kt_s3_style_used(s) == KT_S3_STYLE_VIRTUAL);
	if (s) {
		CHECK(kt_s3_build_url(s, "k", "uploads=", &u, &err) == KT_OK);
		CHECK_STR(u.url, "https://my-bucket.s3.eu-west-1.amazonaws.com/k?uploads=");
		CHECK_STR(u.host, "my-bucket.s3.eu-west-1.amazonaws.com");
		CHECK_STR(u.path, "/k");
		CHECK(kt_s3_build_url(s, NULL, "", &u, &err) == KT_OK);
		CHECK_STR(u.path, "/");
	}
	kt_s3_free(s);

	/* Default port left out of Host; forced styles; dotted bucket on https. */
	s = client("https://s3.example.com:443/", "a.b", KT_S3_STYLE_AUTO);
	CHECK(s && kt_s3_style_used(s) == KT_S3_STYLE_PATH);
	if (s) {
		CHECK(kt_s3_build_url(s, "x", "", &u, &err) == KT_OK);
		CHECK_STR(u.host, "s3.example.com");
		CHECK_STR(u.url, "https://s3.example.com/a.b/x");
	}
	kt_s3_free(s);
	s = client("http://minio.local:9000", "bk1", KT_S3_STYLE_VIRTUAL);
	CHECK(s && kt_s3_style_used(s) == KT_S3_STYLE_VIRTUAL);
	if (s) {
		CHECK(kt_s3_build_url(s, "x", "", &u, &err) == KT_OK);
		CHECK_STR(u.url, "http://bk1.minio.local:9000/x");
	}
	kt_s3_free(s);
	s = client("http://[::1]:9000", "bk1", KT_S3_STYLE_AUTO);
	CHECK(s && kt_s3_style_used(s) == KT_S3_STYLE_PATH);
	if (s) {
		CHECK(kt_s3_build_url(s, "x", "", &u, &err) == KT_OK);
		CHECK_STR(u.url, "http://[::1]:9000/bk1/x");
	}
	kt_s3_free(s);
}

static void test_config_errors(void)
{
	kt_s3_config c;
	kt_s3 *s = NULL;
	kt_error err;
	memset(&c, 0, sizeof(c));
	c.endpoint = "ftp://x";
	c.bucket = "b";
	c.access_key = "AK";
	c.secret_key = "config-secret-value";
	CHECK(kt_s3_new(&s, &c, &err) == KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "http:// or https://");
	c.endpoint = "http://h/path";
	CHECK(kt_s3_new(&s, &c, &err) == KT_EUSAGE);
	c.endpoint = "http://user:pw@h";
	CHECK(kt_s3_new(&s, &c, &err) == KT_EUSAGE);
	CHECK(!strstr(err.msg, "pw"));
	c.endpoint = "http://h:99999";
	CHECK(kt_s3_new(&s, &c, &err) == KT_EUSAGE);
	c.endpoint = "http://h";
	c.secret_key = NULL;
	CHECK(kt_s3_new(&s, &c, &err) == KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "secret key");
	c.secret_key = "config-secret-value";
	c.part_size = 1u << 20;
	CHECK(kt_s3_new(&s, &c, &err) == KT_EUSAGE);
	c.part_size = 0;
	c.bucket = "Bad_Bucket";
	c.style = KT_S3_STYLE_VIRTUAL;
	CHECK(kt_s3_new(&s, &c, &err) == KT_EUSAGE);
	CHECK(s == NULL);
	/* Registered as a log secret: redaction replaces it. */
	kt_buf out;
	kt_buf_init(&out, 4096);
	kt_redact(&out, "key=config-secret-value");
	CHECK(!strstr(out.data, "config-secret-value"));
	kt_buf_release(&out);
}

/* ---- XML ---- */

typedef struct listed {
	int n;
	char keys[8][64];
	uint64_t sizes[8];
	char etags[8][64];
} listed;

static kt_code on_entry(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	listed *l = ctx;
	(void)err;
	if (l->n < 8) {
		snprintf(l->keys[l->n], 64, "%s", e->key);
		l->sizes[l->n] = e->size;
		snprintf(l->etags[l->n], 64, "%s", e->etag);
	}
	l->n++;
	return KT_OK;
}

static const char LIST_XML[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>bk</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
	"<IsTruncated>true</IsTruncated>"
	"<Contents><Key>p/a&amp;b &lt;1&gt;</Key><LastModified>2024-01-01T00:00:00.000Z"
	"</LastModified><ETag>&quot;abc&quot;</ETag><Size>12</Size>"
	"<StorageClass>STANDARD</StorageClass></Contents>\n  "
	"<Contents><Key><![CDATA[p/c<d>]]></Key><ETag>\"def-3\"</ETag><Size>18446744073709551615"
	"</Size></Contents>"
	"<NextContinuationToken>tok/+=</NextContinuationToken>"
	"<!-- a comment --></ListBucketResult>\n";

static void test_parse_list(void)
{
	listed l;
	kt_s3_list_page page;
	kt_error err;
	memset(&l, 0, sizeof(l));
	CHECK(kt_s3_parse_list(LIST_XML, strlen(LIST_XML), on_entry, &l, &page, &err) == KT_OK);
	CHECK_EQ_U(l.n, 2);
	CHECK_STR(l.keys[0], "p/a&b <1>");
	CHECK_EQ_U(l.sizes[0], 12);
	CHECK_STR(l.etags[0], "abc");
	CHECK_STR(l.keys[1], "p/c<d>");
	CHECK_EQ_U(l.sizes[1], UINT64_MAX);
	CHECK_STR(l.etags[1], "def-3");
	CHECK(page.truncated);
	CHECK_STR(page.next_token, "tok/+=");

	const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
	CHECK(kt_s3_parse_list(last, strlen(last), on_entry, &l, &page, &err) == KT_OK);
	CHECK(!page.truncated);
	CHECK_EQ_U(page.n_entries, 0);
}

static void test_parse_error_initiate_complete(void)
{
	kt_s3_errdoc d;
	kt_error err;
	const char *e = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch"
	                "</Code><Message>The request signature we calculated does not match."
	                "</Message><Key>k</Key><BucketName>b</BucketName><Resource>/b/k</Resource>"
	                "<RequestId>17</RequestId></Error>";
	CHECK(kt_s3_parse_error(e, strlen(e), &d, &err) == KT_OK);
	CHECK(d.is_error);
	CHECK_STR(d.code, "SignatureDoesNotMatch");
	CHECK_STR(d.message, "The request signature we calculated does not match.");
	const char *ctl = "<Error><Code>X&#10;Y</Code><Message>a&#x7;b</Message></Error>";
	CHECK(kt_s3_parse_error(ctl, strlen(ctl), &d, &err) == KT_OK);
	CHECK_STR(d.code, "X?Y");
	CHECK_STR(d.message, "a?b");

	char id[1024];
	const char *i = "<InitiateMultipartUploadResult xmlns=\"x\"><Bucket>b</Bucket><Key>k</Key>"
	                "<UploadId>VXBsb2FkIElE-1</UploadId></InitiateMultipartUploadResult>";
	CHECK(kt_s3_parse_initiate(i, strlen(i), id, &err) == KT_OK);
	CHECK_STR(id, "VXBsb2FkIElE-1");
	const char *noid = "<InitiateMultipartUploadResult></InitiateMultipartUploadResult>";
	CHECK(kt_s3_parse_initiate(noid, strlen(noid), id, &err) == KT_EPROTO);
	const char *spaceid = "<InitiateMultipartUploadResult><UploadId>a b</UploadId>"
	                      "</InitiateMultipartUploadResult>";
	CHECK(kt_s3_parse_initiate(spaceid, strlen(spaceid), id, &err) == KT_EPROTO);

	char etag[132];
	const char *c = "<CompleteMultipartUploadResult><Location>x</Location><ETag>"
	                "&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
	                "</CompleteMultipartUploadResult>";
	CHECK(kt_s3_parse_complete(c, strlen(c), etag, &d, &err) == KT_OK);
	CHECK_STR(etag, "3858f62230ac3c915f300c664312c11f-9");
	/* S3 may answer 200 and then an <Error> (after whitespace keep-alives). */
	const char *c200 = "\n \n<Error><Code>InternalError</Code><Message>oops</Message></Error>";
	CHECK(kt_s3_parse_complete(c200, strlen(c200), etag, &d, &err) == KT_EREMOTE);
	CHECK_STR(d.code, "InternalError");
}

static kt_code count_el(void *ctx, const char *path, const char *text, size_t len,
                        kt_error *err)
{
	(void)path;
	(void)text;
	(void)len;
	(void)err;
	(*(int *)ctx)++;
	return KT_OK;
}

static void test_xml_hostile(void)
{
	static const struct { const char *xml; kt_code rc; } cases[] = {
		{ "", KT_EPROTO },
		{ "   ", KT_EPROTO },
		{ "<a>", KT_EPROTO },
		{ "<a></b>", KT_EPROTO },
		{ "<a><b></a></b>", KT_EPROTO },
		{ "</a>", KT_EPROTO },
		{ "<a></a><b></b>", KT_EPROTO },
		{ "<a></a>trailing", KT_EPROTO },
		{ "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", KT_EPROTO },
		{ "<a>&unknown;</a>", KT_EPROTO },
		{ "<a>&#0;</a>", KT_EPROTO },
		{ "<a>&#xD800;</a>", KT_EPROTO },
		{ "<a>&#x110000;</a>", KT_EPROTO },
		{ "<a>&#99999999999999999999;</a>", KT_EPROTO },
		{ "<a>&amp</a>", KT_EPROTO },
		{ "<a x=unquoted></a>", KT_EPROTO },
		{ "<a x=\"unterminated></a>", KT_EPROTO },
		{ "<a><![CDATA[never ends</a>", KT_EPROTO },
		{ "<a><!-- never ends</a>", KT_EPROTO },
		{ "<a><?pi inside?></a>", KT_EPROTO },
		{ "<>", KT_EPROTO },
		{ "<a/>", KT_OK },
		{ "<a x='1' y=\"2\"><b/>t</a>", KT_OK },
		{ "\xEF\xBB\xBF<a>&#x1F600;&#65;</a>", KT_OK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = 0;
		kt_error err;
		kt_code rc = kt_s3xml_parse(cases[i].xml, strlen(cases[i].xml), count_el, &n, &err);
		if (rc != cases[i].rc)
			fprintf(stderr, "  case %zu '%s': got %d (%s)\n", i, cases[i].xml, rc,
			        rc ? err.msg : "");
		CHECK(rc == cases[i].rc);
	}
	/* NUL inside text. */
	kt_error err;
	int n = 0;
	CHECK(kt_s3xml_parse("<a>x\0y</a>", 10, count_el, &n, &err) == KT_EPROTO);

	/* Depth bomb. */
	kt_buf b;
	kt_buf_init(&b, KT_BUF_UNLIMITED);
	for (int i = 0; i < 1000; i++)
		kt_buf_adds(&b, "<a>", &err);
	CHECK(kt_s3xml_parse(b.data, b.len, count_el, &n, &err) == KT_ELIMIT);
	/* Text bomb: one element with more text than the limit. */
	kt_buf_reset(&b);
	kt_buf_adds(&b, "<a>", &err);
	for (int i = 0; i < KT_S3XML_MAX_TEXT + 10; i++)
		kt_buf_adds(&b, "&amp;", &err);
	kt_buf_adds(&b, "</a>", &err);
	CHECK(kt_s3xml_parse(b.data, b.len, count_el, &n, &err) == KT_ELIMIT);
	/* Whitespace between many children is not text of the parent: fine. */
	kt_buf_reset(&b);
	kt_buf_adds(&b, "<ListBucketResult>", &err);
	for (int i = 0; i < 3000; i++)
		kt_buf_addf(&b, &err, "\n    <Contents><Key>k%d</Key><Size>%d</Size></Contents>", i, i);
	kt_buf_adds(&b, "\n</ListBucketResult>", &err);
	listed l;
	kt_s3_list_page page;
	memset(&l, 0, sizeof(l));
	CHECK(kt_s3_parse_list(b.data, b.len, on_entry, &l, &page, &err) == KT_OK);
	CHECK_EQ_U(l.n, 3000);
	kt_buf_release(&b);

	/* List documents that lie. */
	static const char *bad_lists[] = {
		"<Error><Code>x</Code></Error>",
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
	};
	for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++)
		CHECK(kt_s3_parse_list(bad_lists[i], strlen(bad_lists[i]), on_entry, &l, &page, &err) ==
		      KT_EPROTO);
}

/* ---- error mapping ---- */

static void test_error_mapping(void)
{
	kt_s3 *s = client("http://127.0.0.1:9", "bk", KT_S3_STYLE_AUTO);
	kt_error err;
	kt_s3_errdoc d;
	if (!s) {
		CHECK(s != NULL);
		return;
	}
	memset(&d, 0, sizeof(d));
	static const struct { const char *code; long status; const char *key; kt_code rc;
	                      const char *says; } cases[] = {
		{ "SignatureDoesNotMatch", 403, "k", KT_EAUTH, "check the access key 'AK'" },
		{ "InvalidAccessKeyId", 403, NULL, KT_EAUTH, "bucket 'bk'" },
		{ "AccessDenied", 403, "k", KT_EAUTH, "http://127.0.0.1:9" },
		{ "", 403, "k", KT_EAUTH, "access denied" },       /* HEAD: no body */
		{ "NoSuchBucket", 404, "k", KT_ENOTFOUND, "bucket 'bk' does not exist" },
		{ "NoSuchKey", 404, "k", KT_ENOTFOUND, "object 'k' not found" },
		{ "", 404, "k", KT_ENOTFOUND, "object 'k' not found" },
		{ "", 404, NULL, KT_ENOTFOUND, "bucket 'bk' does not exist" },
		{ "InternalError", 500, "k", KT_ETRANSIENT, "HTTP 500" },
		{ "", 503, "k", KT_ETRANSIENT, "HTTP 503" },
		{ "SlowDown", 503, "k", KT_ETRANSIENT, "SlowDown" },
		{ "", 429, "k", KT_ETRANSIENT, "HTTP 429" },
		{ "RequestTimeout", 400, "k", KT_ETRANSIENT, "RequestTimeout" },
		{ "InvalidArgument", 400, "k", KT_EREMOTE, "InvalidArgument" },
		{ "EntityTooSmall", 400, "k", KT_EREMOTE, "EntityTooSmall" },
		{ "BucketAlreadyOwnedByYou", 409, NULL, KT_EEXIST, "already exists" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(d.code, sizeof(d.code), "%s", cases[i].code);
		snprintf(d.message, sizeof(d.message), "msg");
		kt_code rc = kt_s3_map_failure(s, "upload", cases[i].key, cases[i].status, &d, &err);
		CHECK_EQ_U(rc, cases[i].rc);
		CHECK_EQ_U(err.status, (unsigned long long)cases[i].status);
		CHECK_CONTAINS(err.msg, cases[i].says);
		CHECK(!strstr(err.msg, "unit-test-secret"));
	}
	kt_s3_free(s);
}

int main(void)
{
	RUN(test_get_vanilla);
	RUN(test_query_order_key_case);
	RUN(test_s3_guide_examples);
	RUN(test_header_value_trimming);
	RUN(test_uri_encoding);
	RUN(test_url_styles);
	RUN(test_config_errors);
	RUN(test_parse_list);
	RUN(test_parse_error_initiate_complete);
	RUN(test_xml_hostile);
	RUN(test_error_mapping);
	return unit_done();
}
