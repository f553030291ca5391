// ipcrpc: a message as raw serialized bytes.
//
// ByteBuffer is what the generic API (runtime/generic_stub.h,
// runtime/generic_service.h) sends and receives: the serialized form of a
// message of any type, exactly as it travels in a MESSAGE frame. It is a
// protobuf MessageLite whose serialization is its bytes, so it goes through
// the same call path as generated messages: sending writes the bytes straight
// into the outgoing frame, and receiving copies the frame's payload once
// (the payload buffer itself is recycled by the connection).
//
// Thread-safety: like any message, one writer or many readers at a time.
//
// Example:
//   demo::HelloRequest typed;
//   typed.set_name("world");
//   ipcrpc::ByteBuffer request(typed.SerializeAsString());
//   ...
//   demo::HelloReply reply;
//   if (!reply.ParseFromString(response.data())) { ... }

#ifndef IPCRPC_RUNTIME_BYTE_BUFFER_H_
#define IPCRPC_RUNTIME_BYTE_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "google/protobuf/message_lite.h"

namespace ipcrpc {

class ByteBuffer final : public google::protobuf::MessageLite {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(std::string bytes) : data_(std::move(bytes)) {}
  ByteBuffer(const ByteBuffer& other) : MessageLite(), data_(other.data_) {}
  ByteBuffer(ByteBuffer&& other) noexcept : MessageLite(), data_(std::move(other.data_)) {}
  ByteBuffer& operator=(const ByteBuffer& other) {
    data_ = other.data_;
    return *this;
  }
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    data_ = std::move(other.data_);
    return *this;
  }

  // The serialized message.
  const std::string& data() const { return data_; }
  std::string* mutable_data() { return &data_; }
  // Moves the bytes out, leaving the buffer empty.
  std::string Release() { return std::exchange(data_, std::string()); }
  size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }

  // MessageLite. Parsing keeps every byte (a ByteBuffer never fails to
  // parse), merging appends (what merging two serialized messages means),
  // serializing writes the bytes unchanged. GetTypeName() is
  // "ipcrpc.ByteBuffer". Parsing works from flat input (ParseFromString,
  // ParseFromArray: what ipcrpc uses), not from a ZeroCopyInputStream.
  std::string GetTypeName() const override;
  ByteBuffer* New(google::protobuf::Arena* arena) const override;
  void Clear() override { data_.clear(); }
  bool IsInitialized() const override { return true; }
  void CheckTypeAndMergeFrom(const google::protobuf::MessageLite& other) override;
  size_t ByteSizeLong() const override { return data_.size(); }
  int GetCachedSize() const override { return static_cast<int>(data_.size()); }
  const char* _InternalParse(const char* ptr,
                             google::protobuf::internal::ParseContext* ctx) override;
  uint8_t* _InternalSerialize(uint8_t* target,
                              google::protobuf::io::EpsCopyOutputStream* stream) const override;

 private:
  std::string data_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_BYTE_BUFFER_H_
