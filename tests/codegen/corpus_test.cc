// Uses the code generated for tests/codegen/corpus/*.proto: method tables and
// wire names, the methods a Service registers, the UNIMPLEMENTED defaults,
// the exact C++ signatures, renamed identifiers, and the calls stubs make into
// a Channel (a recording fake, so no transport or server is involved), and a
// stub faked through StubInterface. Over 500 lines: one test per corpus file,
// all against the same recording fake.

#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/codegen/corpus/clashes.ipcrpc.pb.h"
#include "tests/codegen/corpus/comments.ipcrpc.pb.h"
#include "tests/codegen/corpus/common/shared.ipcrpc.pb.h"
#include "tests/codegen/corpus/dotted.ipcrpc.pb.h"
#include "tests/codegen/corpus/greeter.ipcrpc.pb.h"
#include "tests/codegen/corpus/guard/one_two.ipcrpc.pb.h"
#include "tests/codegen/corpus/guard_one/two.ipcrpc.pb.h"
#include "tests/codegen/corpus/no_package.ipcrpc.pb.h"

namespace {

using ::google::protobuf::MessageLite;
using ::ipcrpc::ClientContext;
using ::ipcrpc::MethodDescriptor;
using ::ipcrpc::RpcKind;
using ::ipcrpc::ServerContext;

// --- A Channel that records which method each stub call names. ---

class NoMessagesCall final : public ipcrpc::internal::ClientCall {
 public:
  absl::Status Write(const MessageLite&) override { return absl::OkStatus(); }
  absl::Status WritesDone() override { return absl::OkStatus(); }
  bool Read(MessageLite*) override { return false; }
  absl::Status Finish() override { return absl::OkStatus(); }
  void Cancel() override {}
};

class RecordingChannel final : public ipcrpc::Channel {
 public:
  std::string target() const override { return "recording"; }
  absl::Status UnaryCall(const MethodDescriptor& method, ClientContext*,
                         const MessageLite& request, MessageLite*) override {
    Record(method, &request);
    return absl::OkStatus();
  }
  void AsyncUnaryCall(const MethodDescriptor& method, ClientContext*,
                      const MessageLite& request, MessageLite*,
                      std::function<void(absl::Status)> done) override {
    Record(method, &request);
    done(absl::OkStatus());
  }
  std::unique_ptr<ipcrpc::internal::ClientCall> StartCall(
      const MethodDescriptor& method, ClientContext*,
      const MessageLite* request) override {
    Record(method, request);
    return std::make_unique<NoMessagesCall>();
  }

  // One entry per call: "<wire name> <request bytes, or - without one>".
  std::vector<std::string> calls;
  // The descriptor each call was given, to check it is the table's entry.
  std::vector<const MethodDescriptor*> descriptors;

 private:
  void Record(const MethodDescriptor& method, const MessageLite* request) {
    calls.push_back(std::string(method.name) + " " +
                    (request ? request->SerializeAsString() : "-"));
    descriptors.push_back(&method);
  }
};

// The wire names of a method table, in order.
template <size_t N>
std::vector<std::string> WireNames(const MethodDescriptor (&table)[N]) {
  std::vector<std::string> names;
  for (const MethodDescriptor& m : table) names.emplace_back(m.name);
  return names;
}

bool IsUnimplemented(const absl::Status& status, absl::string_view message) {
  return status.code() == absl::StatusCode::kUnimplemented &&
         status.message() == message;
}

// --- demo.Greeter: the four kinds. ---

using Greeter = demo::Greeter;
using demo::HelloReply;
using demo::HelloRequest;

// The exact signatures promised in docs/CODEGEN.md.
static_assert(
    std::is_same_v<decltype(&Greeter::Service::SayHello),
                   absl::Status (Greeter::Service::*)(
                       ServerContext*, const HelloRequest*, HelloReply*)>);
static_assert(std::is_same_v<decltype(&Greeter::Service::Lots),
                             absl::Status (Greeter::Service::*)(
                                 ServerContext*, const HelloRequest*,
                                 ipcrpc::ServerWriter<HelloReply>*)>);
static_assert(
    std::is_same_v<decltype(&Greeter::Service::Many),
                   absl::Status (Greeter::Service::*)(
                       ServerContext*, ipcrpc::ServerReader<HelloRequest>*,
                       HelloReply*)>);
static_assert(
    std::is_same_v<decltype(&Greeter::Service::Chat),
                   absl::Status (Greeter::Service::*)(
                       ServerContext*,
                       ipcrpc::ServerReaderWriter<HelloReply, HelloRequest>*)>);
static_assert(
    std::is_same_v<decltype(&Greeter::Stub::SayHello),
                   absl::Status (Greeter::Stub::*)(
                       ClientContext*, const HelloRequest&, HelloReply*)>);
static_assert(
    std::is_same_v<decltype(&Greeter::StubInterface::async_interface::SayHello),
                   void (Greeter::StubInterface::async_interface::*)(
                       ClientContext*, const HelloRequest*, HelloReply*,
                       std::function<void(absl::Status)>)>);
static_assert(std::is_same_v<decltype(std::declval<Greeter::Stub&>().async()),
                             class Greeter::Stub::async*>);
static_assert(
    std::is_same_v<decltype(&Greeter::Stub::Lots),
                   std::unique_ptr<ipcrpc::ClientReader<HelloReply>> (
                       Greeter::Stub::*)(ClientContext*, const HelloRequest&)>);
static_assert(
    std::is_same_v<decltype(&Greeter::Stub::Many),
                   std::unique_ptr<ipcrpc::ClientWriter<HelloRequest>> (
                       Greeter::Stub::*)(ClientContext*, HelloReply*)>);
static_assert(
    std::is_same_v<
        decltype(&Greeter::Stub::Chat),
        std::unique_ptr<ipcrpc::ClientReaderWriter<HelloRequest, HelloReply>> (
            Greeter::Stub::*)(ClientContext*)>);
static_assert(std::is_same_v<decltype(&Greeter::NewStub),
                             std::unique_ptr<Greeter::Stub> (*)(
                                 std::shared_ptr<ipcrpc::Channel>)>);
static_assert(std::is_abstract_v<Greeter::StubInterface> &&
              std::has_virtual_destructor_v<Greeter::StubInterface> &&
              std::is_base_of_v<Greeter::StubInterface, Greeter::Stub>);
static_assert(std::is_polymorphic_v<Greeter::Service> &&
              std::is_base_of_v<ipcrpc::Service, Greeter::Service>);
static_assert(demo::kGreeterMethods[3].kind == RpcKind::kBidiStreaming);

TEST(GreeterTest, MethodTableListsMethodsInProtoOrder) {
  EXPECT_EQ(Greeter::kServiceName, "demo.Greeter");
  EXPECT_EQ(
      WireNames(demo::kGreeterMethods),
      (std::vector<std::string>{"/demo.Greeter/SayHello", "/demo.Greeter/Lots",
                                "/demo.Greeter/Many", "/demo.Greeter/Chat"}));
  EXPECT_EQ(demo::kGreeterMethods[0].kind, RpcKind::kUnary);
  EXPECT_EQ(demo::kGreeterMethods[1].kind, RpcKind::kServerStreaming);
  EXPECT_EQ(demo::kGreeterMethods[2].kind, RpcKind::kClientStreaming);
  EXPECT_EQ(demo::kGreeterMethods[3].kind, RpcKind::kBidiStreaming);
}

TEST(GreeterTest, ServiceRegistersEveryMethodOfTheTable) {
  Greeter::Service service;
  EXPECT_EQ(service.name(), "demo.Greeter");
  ASSERT_EQ(service.methods().size(), std::size(demo::kGreeterMethods));
  for (size_t i = 0; i < service.methods().size(); ++i) {
    const auto& registered = service.methods()[i];
    EXPECT_EQ(registered.descriptor.name, demo::kGreeterMethods[i].name);
    EXPECT_EQ(registered.descriptor.kind, demo::kGreeterMethods[i].kind);
    EXPECT_NE(registered.handler, nullptr);
  }
}

TEST(GreeterTest, DefaultsAreUnimplemented) {
  Greeter::Service service;
  HelloRequest request;
  HelloReply reply;
  EXPECT_TRUE(
      IsUnimplemented(service.SayHello(nullptr, &request, &reply),
                      "Method demo.Greeter/SayHello is not implemented"));
  EXPECT_TRUE(IsUnimplemented(service.Lots(nullptr, &request, nullptr),
                              "Method demo.Greeter/Lots is not implemented"));
  EXPECT_TRUE(IsUnimplemented(service.Many(nullptr, nullptr, &reply),
                              "Method demo.Greeter/Many is not implemented"));
  EXPECT_TRUE(IsUnimplemented(service.Chat(nullptr, nullptr),
                              "Method demo.Greeter/Chat is not implemented"));
}

class Greeting final : public Greeter::Service {
 public:
  absl::Status SayHello(ServerContext*, const HelloRequest* request,
                        HelloReply* reply) override {
    reply->set_message("hello " + request->name());
    return absl::OkStatus();
  }
};

TEST(GreeterTest, OverridesReplaceDefaultsOnly) {
  Greeting greeting;
  Greeter::Service& service = greeting;
  HelloRequest request;
  request.set_name("ada");
  HelloReply reply;
  EXPECT_TRUE(service.SayHello(nullptr, &request, &reply).ok());
  EXPECT_EQ(reply.message(), "hello ada");
  EXPECT_EQ(service.Many(nullptr, nullptr, &reply).code(),
            absl::StatusCode::kUnimplemented);
}

TEST(GreeterTest, StubsCallTheChannelWithTheirTableEntry) {
  auto channel = std::make_shared<RecordingChannel>();
  std::unique_ptr<Greeter::Stub> stub = Greeter::NewStub(channel);
  HelloRequest request;
  request.set_name("ada");
  const std::string bytes = request.SerializeAsString();
  HelloReply reply;

  ClientContext unary, async, lots, many, chat;
  EXPECT_TRUE(stub->SayHello(&unary, request, &reply).ok());
  absl::Status async_status = absl::UnknownError("done not called");
  stub->async()->SayHello(&async, &request, &reply,
                          [&](absl::Status s) { async_status = s; });
  EXPECT_TRUE(async_status.ok());
  auto reader = stub->Lots(&lots, request);
  EXPECT_FALSE(reader->Read(&reply));
  EXPECT_TRUE(reader->Finish().ok());
  auto writer = stub->Many(&many, &reply);
  EXPECT_TRUE(writer->Write(request));
  auto stream = stub->Chat(&chat);
  EXPECT_TRUE(stream->WritesDone());
  EXPECT_TRUE(stream->Finish().ok());

  EXPECT_EQ(
      channel->calls,
      (std::vector<std::string>{
          "/demo.Greeter/SayHello " + bytes, "/demo.Greeter/SayHello " + bytes,
          "/demo.Greeter/Lots " + bytes, "/demo.Greeter/Many -",
          "/demo.Greeter/Chat -"}));
  EXPECT_EQ(channel->descriptors,
            (std::vector<const MethodDescriptor*>{
                &demo::kGreeterMethods[0], &demo::kGreeterMethods[0],
                &demo::kGreeterMethods[1], &demo::kGreeterMethods[2],
                &demo::kGreeterMethods[3]}));
}

// --- a.b.c: dotted package, nested/imported/well-known types. ---

using a::b::c::Catalog;
using google::protobuf::Empty;
using google::protobuf::Timestamp;

static_assert(std::is_same_v<decltype(&Catalog::Service::Lookup),
                             absl::Status (Catalog::Service::*)(
                                 ServerContext*, const a::b::c::Outer_Inner*,
                                 a::b::c::Outer_Inner_Deepest*)>);
static_assert(std::is_same_v<
              decltype(&Catalog::Service::Locate),
              absl::Status (Catalog::Service::*)(
                  ServerContext*, const corpus::common::Point*,
                  ipcrpc::ServerWriter<corpus::common::Envelope_Header>*)>);
static_assert(std::is_same_v<decltype(&Catalog::Service::Ping),
                             absl::Status (Catalog::Service::*)(
                                 ServerContext*, const Empty*, Timestamp*)>);
static_assert(std::is_same_v<decltype(&Catalog::Service::Upload),
                             absl::Status (Catalog::Service::*)(
                                 ServerContext*,
                                 ipcrpc::ServerReader<Timestamp>*, Empty*)>);
static_assert(std::is_same_v<decltype(&Catalog::Stub::Mirror),
                             std::unique_ptr<ipcrpc::ClientReaderWriter<
                                 a::b::c::Outer, corpus::common::Envelope>> (
                                 Catalog::Stub::*)(ClientContext*)>);

TEST(DottedPackageTest, WireNamesUseTheFullServiceName) {
  EXPECT_EQ(Catalog::kServiceName, "a.b.c.Catalog");
  EXPECT_EQ(WireNames(a::b::c::kCatalogMethods),
            (std::vector<std::string>{
                "/a.b.c.Catalog/Lookup", "/a.b.c.Catalog/Locate",
                "/a.b.c.Catalog/Ping", "/a.b.c.Catalog/Upload",
                "/a.b.c.Catalog/Mirror"}));
  EXPECT_EQ(WireNames(a::b::c::kClockMethods),
            (std::vector<std::string>{"/a.b.c.Clock/Now"}));
}

TEST(DottedPackageTest, EveryServiceOfTheFileIsGenerated) {
  Catalog::Service catalog;
  a::b::c::Clock::Service clock;
  a::b::c::Idle::Service idle;
  EXPECT_EQ(catalog.methods().size(), 5u);
  EXPECT_EQ(clock.name(), "a.b.c.Clock");
  EXPECT_EQ(idle.name(), "a.b.c.Idle");
  EXPECT_TRUE(idle.methods().empty());
  EXPECT_NE(a::b::c::Idle::NewStub(nullptr), nullptr);

  Empty empty;
  Timestamp now;
  EXPECT_TRUE(IsUnimplemented(clock.Now(nullptr, &empty, &now),
                              "Method a.b.c.Clock/Now is not implemented"));
}

TEST(DottedPackageTest, StubsSendWellKnownTypes) {
  auto channel = std::make_shared<RecordingChannel>();
  Catalog::Stub stub(channel);
  ClientContext context;
  Empty empty;
  Timestamp now;
  EXPECT_TRUE(stub.Ping(&context, empty, &now).ok());
  EXPECT_EQ(channel->calls, (std::vector<std::string>{"/a.b.c.Catalog/Ping "}));
}

TEST(DottedPackageTest, Proto3OptionalFieldsHavePresence) {
  a::b::c::Outer_Inner inner;
  EXPECT_FALSE(inner.has_name());
  inner.set_name("");
  EXPECT_TRUE(inner.has_name());
  corpus::common::Point point;
  EXPECT_FALSE(point.has_label());
}

// --- No package: everything in the global namespace. ---

TEST(NoPackageTest, ServicesLiveInTheGlobalNamespace) {
  EXPECT_EQ(::Echo::kServiceName, "Echo");
  EXPECT_EQ(WireNames(::kEchoMethods),
            (std::vector<std::string>{"/Echo/Echo", "/Echo/Count"}));
  ::Echo::Service echo;
  ::Request request;
  ::Reply reply;
  // Kept: a member may be named like an enclosing class other than its own.
  EXPECT_TRUE(IsUnimplemented(echo.Echo(nullptr, &request, &reply),
                              "Method Echo/Echo is not implemented"));
}

TEST(NoPackageTest, ServiceNamedLikeANamespaceIsRenamed) {
  EXPECT_EQ(::std_::kServiceName, "std");
  EXPECT_EQ(WireNames(::kstdMethods), (std::vector<std::string>{"/std/Get"}));
}

// --- Keywords and generated names as service and method names. ---

TEST(ClashesTest, KeywordMethodsGetASuffixAndKeepTheirWireNames) {
  EXPECT_EQ(WireNames(clash::kKeywordsMethods),
            (std::vector<std::string>{
                "/clash.Keywords/delete", "/clash.Keywords/delete_",
                "/clash.Keywords/class", "/clash.Keywords/register",
                "/clash.Keywords/new", "/clash.Keywords/this"}));
  clash::Keywords::Service service;
  clash::Request request;
  clash::Reply reply;
  // `delete_` is taken by the .proto, so `delete` becomes `delete__`.
  EXPECT_TRUE(
      IsUnimplemented(service.delete__(nullptr, &request, &reply),
                      "Method clash.Keywords/delete is not implemented"));
  EXPECT_TRUE(
      IsUnimplemented(service.delete_(nullptr, &request, &reply),
                      "Method clash.Keywords/delete_ is not implemented"));
  EXPECT_EQ(service.class_(nullptr, &request, &reply).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(service.register_(nullptr, &request, nullptr).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(service.new_(nullptr, nullptr, &reply).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(service.this_(nullptr, nullptr).code(),
            absl::StatusCode::kUnimplemented);
}

TEST(ClashesTest, GeneratedMemberNamesAsMethodNames) {
  EXPECT_EQ(WireNames(clash::kNamesMethods),
            (std::vector<std::string>{
                "/clash.Names/NewStub", "/clash.Names/Service",
                "/clash.Names/Stub", "/clash.Names/StubInterface",
                "/clash.Names/async", "/clash.Names/async_interface",
                "/clash.Names/kServiceName", "/clash.Names/kNamesMethods",
                "/clash.Names/Names", "/clash.Names/AddMethod",
                "/clash.Names/name", "/clash.Names/methods",
                "/clash.Names/channel_", "/clash.Names/async_stub_",
                "/clash.Names/stub_", "/clash.Names/AsyncFoo",
                "/clash.Names/Foo", "/clash.Names/Bar", "/clash.Names/Request",
                "/clash.Names/Reply", "/clash.Names/context",
                "/clash.Names/request", "/clash.Names/done", "/clash.Names/args",
                "/clash.Names/clash", "/clash.Names/ipcrpc"}));
  clash::Names::Service service;
  // Methods hide ipcrpc::Service's name() and methods(); the runtime (and
  // anyone else) still reaches them through the base class.
  const ipcrpc::Service& base = service;
  EXPECT_EQ(base.name(), "clash.Names");
  EXPECT_EQ(base.methods().size(), 26u);
  // Only names C++ forbids in these classes were renamed.
  clash::Request request;
  clash::Reply reply;
  for (absl::Status status : {
           service.NewStub(nullptr, &request, &reply),
           service.Service_(nullptr, &request, &reply),
           service.Stub_(nullptr, &request, &reply),
           service.StubInterface_(nullptr, &request, &reply),
           service.async_(nullptr, &request, &reply),
           service.async_interface_(nullptr, &request, &reply),
           service.kServiceName(nullptr, &request, &reply),
           service.kNamesMethods(nullptr, &request, &reply),
           service.Names(nullptr, &request, &reply),
           service.AddMethod(nullptr, &request, &reply),
           service.name(nullptr, &request, &reply),
           service.methods(nullptr, &request, &reply),
           service.channel__(nullptr, &request, &reply),
           service.async_stub__(nullptr, &request, &reply),
           service.stub__(nullptr, &request, &reply),
           service.AsyncFoo(nullptr, &request, &reply),
           service.Foo(nullptr, &request, &reply),
           service.Bar(nullptr, &request, nullptr),
           service.Request(nullptr, &request, &reply),
           service.Reply(nullptr, &request, &reply),
           service.context(nullptr, &request, &reply),
           service.request(nullptr, &request, &reply),
           service.done(nullptr, &request, &reply),
           service.args(nullptr, &request, &reply),
           service.clash(nullptr, &request, &reply),
           service.ipcrpc(nullptr, &request, &reply),
       }) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  }
}

TEST(ClashesTest, CallbackVariantsLiveBehindAsync) {
  auto channel = std::make_shared<RecordingChannel>();
  clash::Names::Stub stub(channel);
  ClientContext c1, c2, c3, c4, c5, c6, c7;
  clash::Request request;
  clash::Reply reply;
  auto ignore = [](absl::Status) {};
  stub.async()->Foo(&c1, &request, &reply, ignore);
  EXPECT_TRUE(stub.AsyncFoo(&c2, request, &reply).ok());  // rpc AsyncFoo
  stub.async()->AsyncFoo(&c3, &request, &reply, ignore);
  stub.async()->NewStub(&c4, &request, &reply, ignore);
  EXPECT_TRUE(stub.kServiceName(&c5, request, &reply).ok());
  EXPECT_TRUE(stub.request(&c6, request, &reply).ok());
  stub.async()->args(&c7, &request, &reply, ignore);
  EXPECT_EQ(channel->calls,
            (std::vector<std::string>{
                "/clash.Names/Foo ", "/clash.Names/AsyncFoo ",
                "/clash.Names/AsyncFoo ", "/clash.Names/NewStub ",
                "/clash.Names/kServiceName ", "/clash.Names/request ",
                "/clash.Names/args "}));
}

TEST(ClashesTest, MethodsNamedLikeTheirServiceKeepTheirNames) {
  EXPECT_EQ(clash::Watch::kServiceName, "clash.Watch");
  clash::Version::Service version;
  clash::Request request;
  clash::Reply reply;
  EXPECT_TRUE(IsUnimplemented(version.Version(nullptr, &request, &reply),
                              "Method clash.Version/Version is not implemented"));
  auto channel = std::make_shared<RecordingChannel>();
  ClientContext c1, c2, c3;
  EXPECT_TRUE(clash::Version::NewStub(channel)->Version(&c1, request, &reply).ok());
  clash::Version::NewStub(channel)->async()->Version(&c2, &request, &reply,
                                                     [](absl::Status) {});
  auto reader = clash::Watch::NewStub(channel)->Watch(&c3, request);
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(channel->calls,
            (std::vector<std::string>{"/clash.Version/Version ",
                                      "/clash.Version/Version ",
                                      "/clash.Watch/Watch "}));
}

TEST(ClashesTest, ClashingServiceNamesGetASuffix) {
  EXPECT_EQ(clash::Service_::kServiceName, "clash.Service");
  EXPECT_EQ(clash::Stub_::kServiceName, "clash.Stub");
  EXPECT_EQ(clash::StubInterface_::kServiceName, "clash.StubInterface");
  EXPECT_EQ(clash::NewStub_::kServiceName, "clash.NewStub");
  EXPECT_EQ(clash::class_::kServiceName, "clash.class");
  EXPECT_EQ(clash::Outer_Inner_::kServiceName, "clash.Outer_Inner");
  clash::Outer_Inner still_the_message;  // protobuf's name for Outer.Inner
  EXPECT_EQ(still_the_message.ByteSizeLong(), 0u);
  EXPECT_EQ(WireNames(clash::kclassMethods),
            (std::vector<std::string>{"/clash.class/Call"}));
  EXPECT_EQ(WireNames(clash::kOuter_InnerMethods),
            (std::vector<std::string>{"/clash.Outer_Inner/Call"}));
}

TEST(ClashesTest, MethodTablesYieldToClasses) {
  // service kTableMethods takes the name Table's table would have had.
  EXPECT_EQ(clash::kTableMethods::kServiceName, "clash.kTableMethods");
  EXPECT_EQ(WireNames(clash::kTableMethods_),
            (std::vector<std::string>{"/clash.Table/Call"}));
  EXPECT_EQ(WireNames(clash::kkTableMethodsMethods),
            (std::vector<std::string>{"/clash.kTableMethods/Call"}));
}

// --- Stubs faked through StubInterface. ---

// Code under test takes the interface, so tests can hand it a fake.
std::string Greet(Greeter::StubInterface& stub, const std::string& name) {
  ClientContext context;
  HelloRequest request;
  request.set_name(name);
  HelloReply reply;
  absl::Status status = stub.SayHello(&context, request, &reply);
  return status.ok() ? reply.message() : std::string(status.message());
}

class FakeGreeter final : public Greeter::StubInterface {
 public:
  absl::Status SayHello(ClientContext*, const HelloRequest& request,
                        HelloReply* reply) override {
    if (request.name().empty()) return absl::InvalidArgumentError("no name");
    reply->set_message("fake hello " + request.name());
    return absl::OkStatus();
  }
  std::unique_ptr<ipcrpc::ClientReader<HelloReply>> Lots(
      ClientContext*, const HelloRequest&) override {
    return nullptr;
  }
  std::unique_ptr<ipcrpc::ClientWriter<HelloRequest>> Many(
      ClientContext*, HelloReply*) override {
    return nullptr;
  }
  std::unique_ptr<ipcrpc::ClientReaderWriter<HelloRequest, HelloReply>> Chat(
      ClientContext*) override {
    return nullptr;
  }
};

TEST(StubInterfaceTest, AFakeStandsInForTheStub) {
  FakeGreeter fake;
  EXPECT_EQ(Greet(fake, "ada"), "fake hello ada");
  EXPECT_EQ(Greet(fake, ""), "no name");
  // A fake that does not override async() has no callback variants.
  EXPECT_EQ(fake.async(), nullptr);

  // The real stub, through the same interface.
  auto channel = std::make_shared<RecordingChannel>();
  std::unique_ptr<Greeter::Stub> stub = Greeter::NewStub(channel);
  EXPECT_EQ(Greet(*stub, "ada"), "");  // the recording channel replies empty
  Greeter::StubInterface& interface = *stub;
  ASSERT_NE(interface.async(), nullptr);
  ClientContext context;
  HelloRequest request;
  HelloReply reply;
  interface.async()->SayHello(&context, &request, &reply, [](absl::Status) {});
  EXPECT_EQ(channel->calls.size(), 2u);
}

// --- Include guards: distinct for guard/one_two and guard_one/two. ---

TEST(IncludeGuardTest, FilesWhosePathsDifferOnlyInSlashAndUnderscore) {
  // Each header was included above; with equal guards the second would
  // have been skipped and this would not compile.
  EXPECT_EQ(guard::slash::First::kServiceName, "guard.slash.First");
  EXPECT_EQ(guard::underscore::Second::kServiceName,
            "guard.underscore.Second");
}

// --- Comments: any text compiles (and -Werror sees -Wtrigraphs). ---

TEST(CommentsTest, ServiceWithTrickyCommentsCompilesAndWorks) {
  comments::Notebook::Service service;
  EXPECT_EQ(service.methods().size(), 4u);
  EXPECT_EQ(WireNames(comments::kNotebookMethods),
            (std::vector<std::string>{
                "/comments.Notebook/Write", "/comments.Notebook/Splice",
                "/comments.Notebook/Backslash", "/comments.Notebook/Block"}));
}

// --- A file with messages only. ---

TEST(MessagesOnlyTest, HeaderIsUsable) {
  corpus::common::Envelope envelope;
  envelope.mutable_header()->set_id("x");
  EXPECT_EQ(envelope.header().id(), "x");
  EXPECT_EQ(corpus::common::PRIORITY_HIGH, 1);
}

}  // namespace

// --- The callback (reactor) forms: every generated template compiles
// (instantiated here, for the services whose names stress the generator)
// and replaces exactly its own method's handler. ---

namespace callback_forms {

template <class S>
void ExpectEveryMethodACallback() {
  S service;
  // Through the base: clash::Names has a method named `methods`.
  const ipcrpc::Service& base = service;
  ASSERT_FALSE(base.methods().empty());
  for (const auto& m : base.methods()) {
    EXPECT_TRUE(m.handler->callback()) << m.descriptor.name;
  }
}

TEST(CallbackServiceTest, EveryMethodIsServedByAReactor) {
  ExpectEveryMethodACallback<clash::Keywords::CallbackService>();
  ExpectEveryMethodACallback<clash::Names::CallbackService>();
  ExpectEveryMethodACallback<clash::Watch::CallbackService>();
  ExpectEveryMethodACallback<clash::Version::CallbackService>();
  ExpectEveryMethodACallback<demo::Greeter::CallbackService>();
}

TEST(CallbackServiceTest, WithCallbackMethodReplacesOnlyItsOwnMethod) {
  demo::Greeter::WithCallbackMethod_Chat<demo::Greeter::Service> service;
  for (const auto& m : service.methods()) {
    EXPECT_EQ(m.handler->callback(), m.descriptor.name == "/demo.Greeter/Chat")
        << m.descriptor.name;
  }
}

}  // namespace callback_forms
