#include "tokenizer/sentencepiece_model.h"

#include <utility>

#include "core/error.h"
#include "tokenizer/protobuf_reader.h"

namespace sparq {

namespace {

// Field numbers from SentencePiece's sentencepiece_model.proto.
namespace model_proto {
constexpr uint32_t kPieces = 1;
constexpr uint32_t kTrainerSpec = 2;
constexpr uint32_t kNormalizerSpec = 3;
}  // namespace model_proto

namespace piece_proto {
constexpr uint32_t kPiece = 1;
constexpr uint32_t kScore = 2;
constexpr uint32_t kType = 3;
}  // namespace piece_proto

namespace trainer_proto {
constexpr uint32_t kModelType = 3;
constexpr uint32_t kByteFallback = 35;
constexpr uint32_t kUnkId = 40;
constexpr uint32_t kBosId = 41;
constexpr uint32_t kEosId = 42;
constexpr uint32_t kPadId = 43;
}  // namespace trainer_proto

namespace normalizer_proto {
constexpr uint32_t kAddDummyPrefix = 3;
constexpr uint32_t kRemoveExtraWhitespaces = 4;
}  // namespace normalizer_proto

struct TrainerSpec {
    int32_t model_type = 1;
    bool byte_fallback = false;
    int32_t unk_id = 0;
    int32_t bos_id = 1;
    int32_t eos_id = 2;
    int32_t pad_id = -1;
};

struct NormalizerSpec {
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
};

void read_piece(protobuf::Reader reader, size_t index, Vocabulary& vocab) {
    std::string piece;
    bool has_piece = false;
    float score = 0.0f;
    int64_t type = static_cast<int64_t>(TokenKind::Normal);
    while (reader.next()) {
        switch (reader.field()) {
            case piece_proto::kPiece:
                piece = std::string(reader.read_string());
                has_piece = true;
                break;
            case piece_proto::kScore: score = reader.read_float(); break;
            // An enum is an int32 on the wire; keep all 64 bits so an absurd
            // value is reported as written rather than truncated.
            case piece_proto::kType: type = static_cast<int64_t>(reader.read_varint()); break;
            default: reader.skip(); break;
        }
    }
    // SentencePiece itself refuses empty pieces; an empty one would also be
    // a token that matches nothing.
    if (!has_piece || piece.empty()) {
        fail_in({"", "", reader.message_name()}, "piece ", index, " has no text");
    }
    if (type < static_cast<int64_t>(TokenKind::Normal) || type > static_cast<int64_t>(TokenKind::Byte)) {
        fail_in({"", "", reader.message_name()}, "piece ", index, " ('", piece, "') has unknown type ",
                static_cast<uint64_t>(type), " (expected 1 NORMAL .. 6 BYTE)");
    }
    vocab.pieces.push_back(std::move(piece));
    vocab.scores.push_back(score);
    vocab.kinds.push_back(static_cast<TokenKind>(type));
}

TrainerSpec read_trainer_spec(protobuf::Reader reader) {
    TrainerSpec spec;
    while (reader.next()) {
        switch (reader.field()) {
            case trainer_proto::kModelType: spec.model_type = reader.read_int32(); break;
            case trainer_proto::kByteFallback: spec.byte_fallback = reader.read_bool(); break;
            case trainer_proto::kUnkId: spec.unk_id = reader.read_int32(); break;
            case trainer_proto::kBosId: spec.bos_id = reader.read_int32(); break;
            case trainer_proto::kEosId: spec.eos_id = reader.read_int32(); break;
            case trainer_proto::kPadId: spec.pad_id = reader.read_int32(); break;
            default: reader.skip(); break;
        }
    }
    return spec;
}

NormalizerSpec read_normalizer_spec(protobuf::Reader reader) {
    NormalizerSpec spec;
    while (reader.next()) {
        switch (reader.field()) {
            case normalizer_proto::kAddDummyPrefix: spec.add_dummy_prefix = reader.read_bool(); break;
            case normalizer_proto::kRemoveExtraWhitespaces: spec.remove_extra_whitespaces = reader.read_bool(); break;
            default: reader.skip(); break;
        }
    }
    return spec;
}

// -1 disables an optional special token; unk is required by SentencePiece.
void check_special_id(const char* name, int32_t id, size_t vocab_size, bool required) {
    const bool in_range = id >= 0 && static_cast<size_t>(id) < vocab_size;
    if (in_range || (!required && id == -1)) return;
    fail_in({"", "", std::string("TrainerSpec.") + name}, name, " ", id, " is outside the vocabulary of ", vocab_size,
            " pieces", required ? "" : " (and is not -1, 'disabled')");
}

// Reads a nested message; if its bytes are cut short, the error names the
// nested message (which piece was cut) rather than the outer one.
protobuf::Reader read_message_named(protobuf::Reader& outer, const std::string& name) {
    try {
        return outer.read_message(name);
    } catch (const Error& e) {
        throw Error(e.message(), {"", "", name});
    }
}

}  // namespace

bool looks_like_sentencepiece_model(std::span<const uint8_t> bytes) {
    constexpr uint8_t kPiecesTag = (model_proto::kPieces << 3) | static_cast<uint8_t>(protobuf::WireType::LengthDelimited);
    return bytes.size() >= 2 && bytes[0] == kPiecesTag && bytes[1] != 0;
}

SentencePieceModel parse_sentencepiece_model(std::span<const uint8_t> bytes, const std::string& file) {
    try {
        SentencePieceModel model;
        Vocabulary& vocab = model.vocabulary;
        vocab.model = "llama";
        TrainerSpec trainer;
        NormalizerSpec normalizer;

        protobuf::Reader reader(bytes, "ModelProto");
        while (reader.next()) {
            switch (reader.field()) {
                case model_proto::kPieces: {
                    const size_t index = vocab.pieces.size();
                    const std::string name = "ModelProto.pieces[" + std::to_string(index) + "]";
                    read_piece(read_message_named(reader, name), index, vocab);
                    break;
                }
                case model_proto::kTrainerSpec:
                    trainer = read_trainer_spec(read_message_named(reader, "TrainerSpec"));
                    break;
                case model_proto::kNormalizerSpec:
                    normalizer = read_normalizer_spec(read_message_named(reader, "NormalizerSpec"));
                    break;
                default: reader.skip(); break;
            }
        }

        if (vocab.pieces.empty()) fail("the SentencePiece model has no pieces");
        check_special_id("unk_id", trainer.unk_id, vocab.size(), true);
        check_special_id("bos_id", trainer.bos_id, vocab.size(), false);
        check_special_id("eos_id", trainer.eos_id, vocab.size(), false);
        check_special_id("pad_id", trainer.pad_id, vocab.size(), false);

        vocab.unk_id = trainer.unk_id;
        vocab.bos_id = trainer.bos_id;
        vocab.eos_id = trainer.eos_id;
        vocab.pad_id = trainer.pad_id;
        vocab.add_bos = trainer.bos_id >= 0;
        vocab.add_space_prefix = normalizer.add_dummy_prefix;
        model.model_type = static_cast<SentencePieceModelType>(trainer.model_type);
        model.byte_fallback = trainer.byte_fallback;
        model.remove_extra_whitespaces = normalizer.remove_extra_whitespaces;
        return model;
    } catch (const Error& e) {
        throw e.with_file(file);
    }
}

}  // namespace sparq
