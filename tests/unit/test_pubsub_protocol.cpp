// conduit.v1 codec: request parsing (accepted shapes, every refusal, raw data
// bytes) and the exact text of replies and pushes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "pubsub/history.hpp"
#include "pubsub/protocol.hpp"

namespace {

using conduit::pubsub::append_empty_result;
using conduit::pubsub::append_error;
using conduit::pubsub::append_publication;
using conduit::pubsub::append_publish_result;
using conduit::pubsub::append_push;
using conduit::pubsub::append_recovery_failed_push;
using conduit::pubsub::append_subscribe_recovery_result;
using conduit::pubsub::append_subscribe_result;
using conduit::pubsub::data_of_push;
using conduit::pubsub::ErrorCode;
using conduit::pubsub::Op;
using conduit::pubsub::ParsedRequest;
using conduit::pubsub::publication_of_push;
using conduit::pubsub::RequestParser;

struct Refusal {
  std::optional<std::uint64_t> id;
  std::string message;
};

// Parses `text` expecting a 400 refusal; returns its id and message.
Refusal refused(RequestParser& parser, const std::string& text) {
  const ParsedRequest r = parser.parse(text);
  EXPECT_FALSE(r.request) << text;
  EXPECT_EQ(r.error.code, ErrorCode::bad_request) << text;
  return {r.error.id, r.error.message};
}

TEST(PubsubProtocol, ParsesSubscribe) {
  RequestParser parser;
  auto r = parser.parse(R"({"id": 1, "subscribe": {"channel": "news"}})");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_EQ(r.request->id, 1u);
  EXPECT_EQ(r.request->op, Op::subscribe);
  EXPECT_EQ(r.request->channel, "news");
  EXPECT_FALSE(r.request->since);
}

TEST(PubsubProtocol, ParsesSubscribeWithSinceInAnyFieldOrder) {
  RequestParser parser;
  auto r = parser.parse(
      R"({"subscribe": {"since": {"epoch": "ab\u0063", "offset": 41}, "channel": "chat:lobby"}, "id": 9007199254740993})");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_EQ(r.request->id, 9007199254740993u);
  EXPECT_EQ(r.request->channel, "chat:lobby");
  ASSERT_TRUE(r.request->since);
  EXPECT_EQ(r.request->since->offset, 41u);
  EXPECT_EQ(r.request->since->epoch, "abc");
  auto zero = parser.parse(R"({"id":1,"subscribe":{"channel":"a","since":{"offset":0,"epoch":""}}})");
  ASSERT_TRUE(zero.request) << zero.error.message;
  EXPECT_EQ(zero.request->since->offset, 0u);
}

TEST(PubsubProtocol, ParsesUnsubscribeAndRefresh) {
  RequestParser parser;
  auto u = parser.parse(R"({"id":2,"unsubscribe":{"channel":"news"}})");
  ASSERT_TRUE(u.request) << u.error.message;
  EXPECT_EQ(u.request->op, Op::unsubscribe);
  EXPECT_EQ(u.request->channel, "news");
  auto t = parser.parse(R"({"id":5,"refresh":{"token":"a.b.c"}})");
  ASSERT_TRUE(t.request) << t.error.message;
  EXPECT_EQ(t.request->op, Op::refresh);
  EXPECT_EQ(t.request->token, "a.b.c");
}

TEST(PubsubProtocol, PublishKeepsDataAsTheRawBytes) {
  RequestParser parser;
  struct Case {
    std::string text;
    std::string data;
  };
  const std::vector<Case> cases = {
      {R"({"id":3,"publish":{"channel":"news","data": {"a" : [1, 2.5e3, "x\u0041", true, null]} }})",
       R"({"a" : [1, 2.5e3, "x\u0041", true, null]})"},
      {R"({"id":3,"publish":{"data":"he said \"hi\"\n" , "channel":"news"}})", R"("he said \"hi\"\n")"},
      {R"({"id":3,"publish":{"channel":"news","data":-12.5e-3}})", "-12.5e-3"},
      {R"({"id":3,"publish":{"channel":"news","data":null}})", "null"},
      {R"({"id":3,"publish":{"channel":"news","data":false}})", "false"},
      {R"({"id":3,"publish":{"channel":"news","data":[]}})", "[]"},
      {"{\"id\":3,\"publish\":{\"channel\":\"news\",\"data\":\t[ {} ,[[]]]\r\n}}", "[ {} ,[[]]]"},
      {R"({"id":3,"publish":{"channel":"news","data":"caf\u00e9 ☕"}})", R"("caf\u00e9 ☕")"},
  };
  for (const auto& c : cases) {
    auto r = parser.parse(c.text);
    ASSERT_TRUE(r.request) << c.text << ": " << r.error.message;
    EXPECT_EQ(r.request->op, Op::publish);
    EXPECT_EQ(r.request->channel, "news");
    EXPECT_EQ(r.request->data, c.data) << c.text;
  }
}

TEST(PubsubProtocol, DataMustBeWellFormedJson) {
  RequestParser parser;
  for (const char* text : {
           R"({"id":3,"publish":{"channel":"n","data":[1,]}})",
           R"({"id":3,"publish":{"channel":"n","data":{"a" 1}}})",
           R"({"id":3,"publish":{"channel":"n","data":"\q"}})",
           R"({"id":3,"publish":{"channel":"n","data":tru}})",
           R"({"id":3,"publish":{"channel":"n","data":nul}})",
           R"({"id":3,"publish":{"channel":"n","data":01}})",
           R"({"id":3,"publish":{"channel":"n","data":1.}})",
           R"({"id":3,"publish":{"channel":"n","data":[1 2]}})",
       }) {
    const Refusal r = refused(parser, text);
    EXPECT_EQ(r.message, "invalid JSON") << text;
    EXPECT_FALSE(r.id) << text;  // a frame that is not JSON answers no request
  }
}

TEST(PubsubProtocol, NumbersInDataFollowTheJsonGrammarAtAnySize) {
  RequestParser parser;
  for (const char* number : {"0", "-0", "7", "-12", "0.5", "1e5", "1E+5", "2.5e-3", "18446744073709551616",
                             "-123456789012345678901234567890.123456789", "1e400", "1e-400"}) {
    auto r = parser.parse(std::string(R"({"id":3,"publish":{"channel":"n","data":[)") + number + "]}}");
    ASSERT_TRUE(r.request) << number << ": " << r.error.message;
    EXPECT_EQ(r.request->data, std::string("[") + number + "]");
  }
  for (const char* number : {"01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.5.2", "--1", "Infinity", "NaN"}) {
    const Refusal r = refused(parser, std::string(R"({"id":3,"publish":{"channel":"n","data":[)") + number + "]}}");
    EXPECT_EQ(r.message, "invalid JSON") << number;
  }
}

TEST(PubsubProtocol, DataNestingIsBounded) {
  RequestParser parser;
  auto nested = [](int depth) {
    return R"({"id":3,"publish":{"channel":"n","data":)" + std::string(depth, '[') + std::string(depth, ']') + "}}";
  };
  auto ok = parser.parse(nested(64));
  ASSERT_TRUE(ok.request) << ok.error.message;
  EXPECT_EQ(ok.request->data.size(), 128u);
  const Refusal deep = refused(parser, nested(65));
  EXPECT_EQ(deep.message, "\"data\" nests deeper than 64 levels");
  EXPECT_EQ(deep.id, 3u);
  // Far beyond any depth limit: refused, no crash.
  const Refusal very_deep = refused(parser, nested(100000));
  EXPECT_FALSE(very_deep.message.empty());
}

TEST(PubsubProtocol, NotJsonHasNoId) {
  RequestParser parser;
  for (std::string text :
       std::vector<std::string>{"", " ", "{", "{\"id\":1,", "{\"id\":1,\"subscribe\":{\"channel\":\"a\"}} x",
                                "{\"id\":1,\"subscribe\":{\"channel\":\"a\"}}{}", "{\"id\":1 \"x\":2}",
                                std::string("{\"id\":1,\"subscribe\":{\"channel\":\"\xff\"}}"),
                                std::string("{\"id\":1,\"subscribe\":{\"channel\":\"a\0\"}}",
                                            sizeof("{\"id\":1,\"subscribe\":{\"channel\":\"a\0\"}}") - 1)}) {
    const Refusal r = refused(parser, text);
    EXPECT_FALSE(r.id) << text;
    EXPECT_EQ(r.message, "invalid JSON") << text;
  }
}

TEST(PubsubProtocol, RequestMustBeAnObject) {
  RequestParser parser;
  for (const char* text : {"[1]", "1", "\"x\"", "null", "nope", "[1,"}) {
    const Refusal r = refused(parser, text);
    EXPECT_FALSE(r.id);
    EXPECT_EQ(r.message, "a request must be a JSON object") << text;
  }
}

TEST(PubsubProtocol, IdMustBeAPositiveInteger) {
  RequestParser parser;
  EXPECT_EQ(refused(parser, R"({"subscribe":{"channel":"a"}})").message, "missing field \"id\"");
  for (const char* id : {"0", "-1", "1.5", "1e2", "\"1\"", "null", "true", "[1]", "18446744073709551616"}) {
    const std::string text = std::string(R"({"id":)") + id + R"(,"subscribe":{"channel":"a"}})";
    const Refusal r = refused(parser, text);
    EXPECT_FALSE(r.id) << text;
    EXPECT_EQ(r.message, "\"id\" must be a positive integer") << text;
  }
  const Refusal dup = refused(parser, R"({"id":1,"id":2,"subscribe":{"channel":"a"}})");
  EXPECT_EQ(dup.message, "duplicate field \"id\"");
  EXPECT_EQ(dup.id, 1u);
}

TEST(PubsubProtocol, ErrorsCarryTheIdWhereverItIs) {
  RequestParser parser;
  const Refusal before = refused(parser, R"({"id":7,"subscribe":{"channel":1}})");
  EXPECT_EQ(before.id, 7u);
  EXPECT_EQ(before.message, "\"channel\" must be a string");
  const Refusal after = refused(parser, R"({"subscribe":{"channel":1,"x":2},"id":8})");
  EXPECT_EQ(after.id, 8u);
  EXPECT_EQ(after.message, "\"channel\" must be a string");
  const Refusal unknown_first = refused(parser, R"({"foo":{"a":[1,2]},"subscribe":{"channel":"a"},"id":9})");
  EXPECT_EQ(unknown_first.id, 9u);
  EXPECT_EQ(unknown_first.message, "unknown field \"foo\"");
  const Refusal nested_since =
      refused(parser, R"({"subscribe":{"channel":"a","since":{"offset":"x","epoch":"e"}},"id":5})");
  EXPECT_EQ(nested_since.id, 5u);
  EXPECT_EQ(nested_since.message, "\"since.offset\" must be a non-negative integer");
  const Refusal deep_data = refused(
      parser, R"({"publish":{"channel":"n","data":)" + std::string(65, '[') + std::string(65, ']') + R"(},"id":6})");
  EXPECT_EQ(deep_data.id, 6u);
  EXPECT_EQ(deep_data.message, "\"data\" nests deeper than 64 levels");
}

TEST(PubsubProtocol, OperationRefusals) {
  RequestParser parser;
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {R"({"id":1})", "missing operation (subscribe, unsubscribe, publish or refresh)"},
      {R"({"id":1,"sub":{"channel":"a"}})", "unknown field \"sub\""},
      {R"({"id":1,"subscribe":{"channel":"a"},"publish":{"channel":"a","data":1}})",
       "more than one operation in a request"},
      {R"({"id":1,"subscribe":"news"})", "subscribe must be an object"},
      {R"({"id":1,"subscribe":{}})", "missing field \"channel\" in subscribe"},
      {R"({"id":1,"subscribe":{"channel":"a","channel":"b"}})", "duplicate field \"channel\" in subscribe"},
      {R"({"id":1,"subscribe":{"channel":"a","data":1}})", "unknown field \"data\" in subscribe"},
      {R"({"id":1,"subscribe":{"channel":"a","since":5}})", "\"since\" must be an object"},
      {R"({"id":1,"subscribe":{"channel":"a","since":{"epoch":"e"}}})", "missing field \"offset\" in since"},
      {R"({"id":1,"subscribe":{"channel":"a","since":{"offset":1}}})", "missing field \"epoch\" in since"},
      {R"({"id":1,"subscribe":{"channel":"a","since":{"offset":-1,"epoch":"e"}}})",
       "\"since.offset\" must be a non-negative integer"},
      {R"({"id":1,"subscribe":{"channel":"a","since":{"offset":"1","epoch":"e"}}})",
       "\"since.offset\" must be a non-negative integer"},
      {R"({"id":1,"subscribe":{"channel":"a","since":{"offset":1,"epoch":2}}})", "\"since.epoch\" must be a string"},
      {R"({"id":1,"subscribe":{"channel":"a","since":{"offset":1,"epoch":"e","x":0}}})",
       "unknown field \"x\" in since"},
      {R"({"id":1,"unsubscribe":{"channel":"a","since":{"offset":1,"epoch":"e"}}})",
       "unknown field \"since\" in unsubscribe"},
      {R"({"id":1,"unsubscribe":{}})", "missing field \"channel\" in unsubscribe"},
      {R"({"id":1,"publish":{"channel":"a"}})", "missing field \"data\" in publish"},
      {R"({"id":1,"publish":{"data":1}})", "missing field \"channel\" in publish"},
      {R"({"id":1,"publish":{"channel":"a","data":1,"data":2}})", "duplicate field \"data\" in publish"},
      {R"({"id":1,"refresh":{}})", "missing field \"token\" in refresh"},
      {R"({"id":1,"refresh":{"token":5}})", "\"token\" must be a string"},
      {R"({"id":1,"refresh":{"token":"t","channel":"a"}})", "unknown field \"channel\" in refresh"},
  };
  for (const auto& c : cases) {
    const Refusal r = refused(parser, c.text);
    EXPECT_EQ(r.message, c.message) << c.text;
    EXPECT_EQ(r.id, 1u) << c.text;
  }
}

TEST(PubsubProtocol, FieldNamesInMessagesAreShortAndPrintable) {
  RequestParser parser;
  const Refusal r = refused(parser, R"({"id":1,"a\"b\n\u00e9cdefghijklmnopqrstuvwxyz0123456789":1})");
  EXPECT_EQ(r.message, "unknown field \"a?b???cdefghijklmnopqrstuvwxyz01...\"");
}

TEST(PubsubProtocol, ViewsStayValidUntilTheNextParse) {
  RequestParser parser;
  std::string text = R"({"id":3,"publish":{"channel":"news","data":{"k":"v"}}})";
  auto r = parser.parse(text);
  ASSERT_TRUE(r.request);
  text.assign(text.size(), 'x');  // the caller's buffer may be reused at once
  EXPECT_EQ(r.request->channel, "news");
  EXPECT_EQ(r.request->data, R"({"k":"v"})");
}

// Random bytes and random mutations of valid requests: never a crash, and
// whatever is accepted has data that an independent JSON parser accepts.
TEST(PubsubProtocol, SurvivesGarbage) {
  RequestParser parser;
  const std::vector<std::string> seeds = {
      R"({"id":1,"subscribe":{"channel":"news","since":{"offset":4,"epoch":"e"}}})",
      R"({"id":3,"publish":{"channel":"news","data":{"a":[1,2,{"b":"c\u0041"}]}}})",
      R"({"id":2,"unsubscribe":{"channel":"news"}})",
      R"({"id":5,"refresh":{"token":"a.b.c"}})",
  };
  std::mt19937 rng(12345);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const std::size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[pos] = static_cast<char>(rng() % 256);
          break;
        case 1:
          text.erase(pos, 1 + rng() % 3);
          break;
        default:
          text.insert(pos, 1, "{}[],:\"\\0e-"[rng() % 11]);
      }
    }
    const ParsedRequest r = parser.parse(text);
    if (r.request) {
      ++accepted;
      if (r.request->op == Op::publish) {
        EXPECT_TRUE(nlohmann::json::accept(r.request->data)) << text;
      }
    } else {
      EXPECT_FALSE(r.error.message.empty());
    }
  }
  EXPECT_GT(accepted, 0);
}

TEST(PubsubProtocol, PublishBodyOfTheHttpApi) {
  RequestParser parser;
  ParsedRequest r = parser.parse_publish_body(R"( {"data": [1, {"b": "x\"y"}] , "channel":"chat:lobby"} )");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_EQ(r.request->op, Op::publish);
  EXPECT_EQ(r.request->id, 0u);
  EXPECT_EQ(r.request->channel, "chat:lobby");
  EXPECT_EQ(r.request->data, R"([1, {"b": "x\"y"}])");  // the bytes as sent
  r = parser.parse_publish_body(R"({"channel":"n","data":12345678901234567890123})");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_EQ(r.request->data, "12345678901234567890123");
  struct Case {
    const char* body;
    const char* message;
  } cases[] = {
      {"", "invalid JSON"},
      {"{\"channel\":\"n\",\"data\":", "invalid JSON"},
      {R"({"channel":"n","data":{"a":}})", "invalid JSON"},
      {R"({"channel":"n","data":1} trailing)", "invalid JSON"},
      {R"({"channel":"n","data":1}{})", "invalid JSON"},
      {R"([1])", "the body must be a JSON object"},
      {R"("text")", "the body must be a JSON object"},
      {R"({"data":1})", "missing field \"channel\" in publish"},
      {R"({"channel":"n"})", "missing field \"data\" in publish"},
      {R"({"channel":"n","data":1,"id":1})", "unknown field \"id\" in publish"},
      {R"({"channel":"n","data":1,"extra":true})", "unknown field \"extra\" in publish"},
      {R"({"channel":5,"data":1})", "\"channel\" must be a string"},
      {R"({"channel":"n","channel":"m","data":1})", "duplicate field \"channel\" in publish"},
  };
  for (const Case& c : cases) {
    r = parser.parse_publish_body(c.body);
    EXPECT_FALSE(r.request) << c.body;
    EXPECT_EQ(r.error.code, ErrorCode::bad_request) << c.body;
    EXPECT_FALSE(r.error.id) << c.body;
    EXPECT_EQ(r.error.message, c.message) << c.body;
  }
}

// ---- builders ---------------------------------------------------------------

TEST(PubsubProtocol, BuildsPushesAroundRawData) {
  std::string push;
  append_push(push, "news", 58, "e1", R"({"a" : 1})");
  EXPECT_EQ(push, R"({"push":{"channel":"news","offset":58,"epoch":"e1","data":{"a" : 1}}})");
  EXPECT_EQ(publication_of_push(push), R"({"channel":"news","offset":58,"epoch":"e1","data":{"a" : 1}})");
  std::string publication;
  append_publication(publication, "news", 58, "e1", R"({"a" : 1})");
  EXPECT_EQ(publication_of_push(push), publication);
  EXPECT_EQ(publication_of_push("{}"), "");
}

TEST(PubsubProtocol, DataOfAPushIsThePublishedBytes) {
  for (const char* data : {R"({"a" : 1})", "null", "\"x,\\\"data\\\":1\"", R"([{"data":2},"}"])", "-1.5e3"}) {
    std::string push;
    append_push(push, "chat:room/7", 3, "e1", data);
    EXPECT_EQ(data_of_push(push), data) << push;
  }
  EXPECT_EQ(data_of_push("{}"), "");
  EXPECT_EQ(data_of_push(R"({"push":{"channel":"a","recovery_failed":{"offset":1,"epoch":"e"}}})"), "");
}

TEST(PubsubProtocol, BuildsReplies) {
  std::string out;
  append_subscribe_result(out, 1, 57, "e1");
  EXPECT_EQ(out, R"({"id":1,"result":{"offset":57,"epoch":"e1"}})");
  out.clear();
  const std::string_view pubs[] = {R"({"channel":"n","offset":2,"epoch":"e1","data":1})",
                                   R"({"channel":"n","offset":3,"epoch":"e1","data":"x"})"};
  append_subscribe_recovery_result(out, 4, 3, "e1", true, pubs);
  EXPECT_EQ(
      out, R"({"id":4,"result":{"offset":3,"epoch":"e1","recovered":true,"publications":[)"
           R"({"channel":"n","offset":2,"epoch":"e1","data":1},{"channel":"n","offset":3,"epoch":"e1","data":"x"}]}})");
  out.clear();
  append_subscribe_recovery_result(out, 4, 3, "e2", false, {});
  EXPECT_EQ(out, R"({"id":4,"result":{"offset":3,"epoch":"e2","recovered":false,"publications":[]}})");
  out.clear();
  append_publish_result(out, 3, 58, "e1");
  EXPECT_EQ(out, R"({"id":3,"result":{"offset":58,"epoch":"e1"}})");
  out.clear();
  append_empty_result(out, 2);
  EXPECT_EQ(out, R"({"id":2,"result":{}})");
  out.clear();
  append_recovery_failed_push(out, "news", 57, "e1");
  EXPECT_EQ(out, R"({"push":{"channel":"news","recovery_failed":{"offset":57,"epoch":"e1"}}})");
}

TEST(PubsubProtocol, BuildsErrorsWithAndWithoutId) {
  std::string out;
  append_error(out, 2, ErrorCode::permission_denied, "permission denied");
  EXPECT_EQ(out, R"({"id":2,"error":{"code":403,"message":"permission denied"}})");
  out.clear();
  append_error(out, std::nullopt, ErrorCode::bad_request, "invalid JSON");
  EXPECT_EQ(out, R"({"error":{"code":400,"message":"invalid JSON"}})");
  EXPECT_EQ(static_cast<int>(ErrorCode::not_subscribed), 404);
  EXPECT_EQ(static_cast<int>(ErrorCode::already_subscribed), 409);
  EXPECT_EQ(static_cast<int>(ErrorCode::too_many_requests), 429);
  EXPECT_EQ(static_cast<int>(ErrorCode::internal), 500);
  EXPECT_EQ(static_cast<int>(ErrorCode::unavailable), 503);
}

TEST(PubsubProtocol, EscapesStringsSoAnyJsonParserReadsThemBack) {
  std::string tricky = "q\"b\\s/\n\r\t\b\f";
  for (int c = 0; c < 0x20; ++c) tricky.push_back(static_cast<char>(c));
  tricky += "caf\xc3\xa9";
  std::string out;
  append_error(out, 1, ErrorCode::bad_request, tricky);
  const auto parsed = nlohmann::json::parse(out);
  EXPECT_EQ(parsed["error"]["message"].get<std::string>(), tricky);
  EXPECT_EQ(parsed["id"].get<int>(), 1);
  out.clear();
  append_push(out, tricky, 1, tricky, "[1]");
  const auto push = nlohmann::json::parse(out);
  EXPECT_EQ(push["push"]["channel"].get<std::string>(), tricky);
  EXPECT_EQ(push["push"]["epoch"].get<std::string>(), tricky);
}

// The intended use of history and codec together: each publication's push is
// built once and kept in history; a recovering subscriber gets the very same
// publication bytes inside its subscribe result.
TEST(PubsubProtocol, SubscribeResultFromHistoryReusesThePushBytes) {
  conduit::pubsub::History history({10, std::chrono::milliseconds(0)}, "e1");
  const conduit::pubsub::HistoryClock::time_point now{};
  for (int i = 1; i <= 4; ++i) {
    std::string push;
    append_push(push, "news", history.next_offset(), history.epoch(), "{\"n\":" + std::to_string(i) + "}");
    auto buffer = std::make_shared<const std::string>(std::move(push));
    history.append(buffer, publication_of_push(*buffer), now);
  }
  const auto recovery = history.recover(2, "e1", now);
  ASSERT_TRUE(recovery.recovered);
  std::vector<std::string_view> publications;
  for (const auto& entry : recovery.publications) publications.push_back(entry.publication);
  std::string reply;
  append_subscribe_recovery_result(reply, 7, recovery.position.offset, recovery.position.epoch, recovery.recovered,
                                   publications);
  const auto json = nlohmann::json::parse(reply);
  EXPECT_EQ(json["id"], 7);
  EXPECT_EQ(json["result"]["offset"], 4);
  EXPECT_EQ(json["result"]["epoch"], "e1");
  EXPECT_EQ(json["result"]["recovered"], true);
  ASSERT_EQ(json["result"]["publications"].size(), 2u);
  EXPECT_EQ(json["result"]["publications"][0],
            nlohmann::json::parse(R"({"channel":"news","offset":3,"epoch":"e1","data":{"n":3}})"));
  EXPECT_EQ(json["result"]["publications"][1]["offset"], 4);
  EXPECT_EQ(json["result"]["publications"][1]["data"]["n"], 4);
}

}  // namespace
