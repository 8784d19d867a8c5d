// SPDX-License-Identifier: Apache-2.0
#include "densa/models/model_card.hpp"

#include "densa/models/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <type_traits>

namespace densa::models {
namespace {

using nlohmann::json;

constexpr std::array<char, 16> kMagic{
    'D', 'E', 'N', 'S', 'A', '-', 'C', 'H', 'E', 'C', 'K', 'P', 'O', 'I', 'N', 'T'};
constexpr std::size_t kHeaderSize = 16 + 4 + 4 + 8 + 8 + 8;
constexpr std::string_view kCardFormat = "densa-model-card";

// ---- JSON of the options ----------------------------------------------------------------------

json toJsonNet(const DenseUNetOptions& o) {
  return json{
      {"inChannels", o.inChannels},
      {"numClasses", o.numClasses},
      {"initFeatures", o.initFeatures},
      {"growthRate", o.growthRate},
      {"bottleneckFactor", o.bottleneckFactor},
      {"compression", o.compression},
      {"blockLayers", o.blockLayers},
      {"decoderChannels", o.decoderChannels},
      {"skips", o.skips},
      {"upsampling", o.upsampling == Upsampling::Nearest ? "nearest" : "linear"},
      {"decoderInit", o.decoderInit == DecoderInit::Normal005 ? "normal-0.05" : "glorot-uniform"},
      {"decoderDropout", o.decoderDropout},
      {"encoderBnEps", o.encoderBnEps},
      {"decoderBnEps", o.decoderBnEps},
      {"bnMomentum", o.bnMomentum}};
}

DenseUNetOptions parseNet(const json& j) {
  DenseUNetOptions o;
  j.at("inChannels").get_to(o.inChannels);
  j.at("numClasses").get_to(o.numClasses);
  j.at("initFeatures").get_to(o.initFeatures);
  j.at("growthRate").get_to(o.growthRate);
  j.at("bottleneckFactor").get_to(o.bottleneckFactor);
  j.at("compression").get_to(o.compression);
  j.at("blockLayers").get_to(o.blockLayers);
  j.at("decoderChannels").get_to(o.decoderChannels);
  j.at("skips").get_to(o.skips);
  const auto up = j.at("upsampling").get<std::string>();
  if (up != "nearest" && up != "linear") {
    throw ModelError("model card: upsampling must be \"nearest\" or \"linear\", got \"" + up +
                     "\"");
  }
  o.upsampling = up == "nearest" ? Upsampling::Nearest : Upsampling::Linear;
  const auto init = j.at("decoderInit").get<std::string>();
  if (init != "normal-0.05" && init != "glorot-uniform") {
    throw ModelError("model card: unknown decoderInit \"" + init + "\"");
  }
  o.decoderInit = init == "normal-0.05" ? DecoderInit::Normal005 : DecoderInit::GlorotUniform;
  j.at("decoderDropout").get_to(o.decoderDropout);
  j.at("encoderBnEps").get_to(o.encoderBnEps);
  j.at("decoderBnEps").get_to(o.decoderBnEps);
  j.at("bnMomentum").get_to(o.bnMomentum);
  return o;
}

json toJsonBackbone(const GeminiBackboneOptions& o) {
  return json{{"dims", o.dims},
              {"inChannels", o.inChannels},
              {"channels", o.channels},
              {"groupChannels", o.groupChannels},
              {"leakySlope", o.leakySlope}};
}

GeminiBackboneOptions parseBackbone(const json& j) {
  GeminiBackboneOptions o;
  j.at("dims").get_to(o.dims);
  j.at("inChannels").get_to(o.inChannels);
  j.at("channels").get_to(o.channels);
  j.at("groupChannels").get_to(o.groupChannels);
  j.at("leakySlope").get_to(o.leakySlope);
  return o;
}

json toJsonHead(const GeminiHeadOptions& o) {
  return json{{"hiddenChannels", o.hiddenChannels}, {"groups", o.groups}};
}

GeminiHeadOptions parseHead(const json& j) {
  GeminiHeadOptions o;
  j.at("hiddenChannels").get_to(o.hiddenChannels);
  j.at("groups").get_to(o.groups);
  return o;
}

json optionsToJson(const ModelOptions& options) {
  return std::visit(
      [](const auto& o) -> json {
        using T = std::remove_cvref_t<decltype(o)>;
        if constexpr (std::is_same_v<T, HDenseUNetOptions>) {
          return json{{"net2d", toJsonNet(o.net2d)},
                      {"net3d", toJsonNet(o.net3d)},
                      {"sliceContext", o.sliceContext},
                      {"autoContextScale", o.autoContextScale},
                      {"fusionDropout", o.fusionDropout},
                      {"numClasses", o.numClasses}};
        } else if constexpr (std::is_same_v<T, CoarseLiverOptions>) {
          return json{{"net", toJsonNet(o.net)}, {"downsample", o.downsample}};
        } else if constexpr (std::is_same_v<T, GeminiOptions>) {
          return json{{"backbone", toJsonBackbone(o.backbone)},
                      {"deformerChannels", o.deformerChannels},
                      {"head", toJsonHead(o.head)},
                      {"restorationHead", o.restorationHead},
                      {"segmentationClasses", o.segmentationClasses},
                      {"diffeomorphic", o.diffeomorphic},
                      {"integrationSteps", o.integrationSteps}};
        } else if constexpr (std::is_same_v<T, GeminiUNetOptions>) {
          return json{{"backbone", toJsonBackbone(o.backbone)},
                      {"head", toJsonHead(o.head)},
                      {"numClasses", o.numClasses}};
        } else if constexpr (std::is_same_v<T, AdslOptions>) {
          return json{{"inChannels", o.inChannels},
                      {"stemChannels", o.stemChannels},
                      {"blocks", o.blocks},
                      {"widths", o.widths},
                      {"attentionChannels", o.attentionChannels},
                      {"embeddingDim", o.embeddingDim},
                      {"dropout", o.dropout},
                      {"inputSize", o.inputSize},
                      {"freezeBatchNorm", o.freezeBatchNorm}};
        } else {
          return toJsonNet(o);
        }
      },
      options);
}

ModelOptions parseOptions(std::string_view architecture, const json& j) {
  if (architecture == HDenseUNetOptions::kId) {
    HDenseUNetOptions o;
    o.net2d = parseNet(j.at("net2d"));
    o.net3d = parseNet(j.at("net3d"));
    j.at("sliceContext").get_to(o.sliceContext);
    j.at("autoContextScale").get_to(o.autoContextScale);
    j.at("fusionDropout").get_to(o.fusionDropout);
    j.at("numClasses").get_to(o.numClasses);
    validate(o);
    return o;
  }
  if (architecture == DenseUNet2dOptions::kId || architecture == DenseUNet3dOptions::kId) {
    const auto net = parseNet(j);
    validate(net);
    if (architecture == DenseUNet2dOptions::kId) {
      return DenseUNet2dOptions{net};
    }
    return DenseUNet3dOptions{net};
  }
  if (architecture == CoarseLiverOptions::kId) {
    CoarseLiverOptions o;
    o.net = parseNet(j.at("net"));
    j.at("downsample").get_to(o.downsample);
    validate(o);
    return o;
  }
  if (architecture == GeminiOptions::kId) {
    GeminiOptions o;
    o.backbone = parseBackbone(j.at("backbone"));
    j.at("deformerChannels").get_to(o.deformerChannels);
    o.head = parseHead(j.at("head"));
    j.at("restorationHead").get_to(o.restorationHead);
    j.at("segmentationClasses").get_to(o.segmentationClasses);
    j.at("diffeomorphic").get_to(o.diffeomorphic);
    j.at("integrationSteps").get_to(o.integrationSteps);
    validate(o);
    return o;
  }
  if (architecture == GeminiUNetOptions::kId) {
    GeminiUNetOptions o;
    o.backbone = parseBackbone(j.at("backbone"));
    o.head = parseHead(j.at("head"));
    j.at("numClasses").get_to(o.numClasses);
    validate(o);
    return o;
  }
  if (architecture == AdslOptions::kId) {
    AdslOptions o;
    j.at("inChannels").get_to(o.inChannels);
    j.at("stemChannels").get_to(o.stemChannels);
    j.at("blocks").get_to(o.blocks);
    j.at("widths").get_to(o.widths);
    j.at("attentionChannels").get_to(o.attentionChannels);
    j.at("embeddingDim").get_to(o.embeddingDim);
    j.at("dropout").get_to(o.dropout);
    j.at("inputSize").get_to(o.inputSize);
    j.at("freezeBatchNorm").get_to(o.freezeBatchNorm);
    validate(o);
    return o;
  }
  throw ModelError("model card: unknown architecture '" + std::string(architecture) +
                   "' (known: hdenseunet, dense-unet-2d, dense-unet-3d, coarse-liver, gemini, "
                   "gemini-unet, adsl)");
}

// ---- container helpers ------------------------------------------------------------------------

std::uint64_t fnv1a(std::uint64_t hash, const char* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= static_cast<unsigned char>(data[i]);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

template <class T>
void putLe(std::string& out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out.push_back(static_cast<char>((static_cast<std::uint64_t>(value) >> (8 * i)) & 0xffU));
  }
}

template <class T>
T getLe(const char* in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return static_cast<T>(v);
}

} // namespace

ModelCard makeModelCard(std::string_view architecture, std::string_view preset) {
  ModelCard card;
  card.preset = std::string(preset);
  card.options = modelPreset(architecture, preset);
  if (architecture == CoarseLiverOptions::kId) {
    card.labels = {"background", "liver"};
  }
  if (const auto* g = std::get_if<GeminiOptions>(&card.options)) {
    // Pretraining: no classes unless a segmentation head is configured.
    if (g->segmentationClasses != static_cast<int>(card.labels.size())) {
      card.labels.clear();
      for (int k = 0; k < g->segmentationClasses; ++k) {
        card.labels.push_back("class" + std::to_string(k));
      }
    }
  }
  if (const auto* h = std::get_if<HDenseUNetOptions>(&card.options)) {
    card.preprocessing.sliceContext = h->sliceContext;
  }
  if (std::holds_alternative<AdslOptions>(card.options)) {
    // A metric-learning embedding: no segmentation classes (training labels are the data set's).
    card.labels.clear();
  }
  card.provenance.trainingStage = "untrained";
  return card;
}

std::string toJson(const ModelCard& card) {
  const auto& p = card.preprocessing;
  const auto& v = card.provenance;
  const json j{
      {"format", kCardFormat},
      {"formatVersion", card.formatVersion},
      {"architecture", architectureId(card.options)},
      {"preset", card.preset},
      {"options", optionsToJson(card.options)},
      {"labels", card.labels},
      {"preprocessing",
       {{"huWindow", {p.huMin, p.huMax}},
        {"intensityOffset", p.intensityOffset},
        {"spacingPolicy", p.spacingPolicy},
        {"windowDepth", p.windowDepth},
        {"windowStride", p.windowStride},
        {"sliceContext", p.sliceContext}}},
      {"thresholds", {{"liver", card.thresholds.liver}, {"tumour", card.thresholds.tumour}}},
      {"provenance",
       {{"densaVersion", v.densaVersion},
        {"gitSha", v.gitSha},
        {"createdUtc", v.createdUtc},
        {"libtorchVersion", v.libtorchVersion},
        {"trainingStage", v.trainingStage},
        {"trainingData", v.trainingData},
        {"notes", v.notes}}}};
  return j.dump(2);
}

ModelCard parseModelCard(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw ModelError(std::string("model card is not valid JSON: ") + e.what());
  }
  try {
    if (!j.is_object() || j.value("format", std::string()) != kCardFormat) {
      throw ModelError("model card: missing \"format\": \"densa-model-card\"");
    }
    ModelCard card;
    j.at("formatVersion").get_to(card.formatVersion);
    if (card.formatVersion > ModelCard::kFormatVersion || card.formatVersion < 1) {
      throw ModelError("model card format version " + std::to_string(card.formatVersion) +
                       " is not supported (this Densa reads up to " +
                       std::to_string(ModelCard::kFormatVersion) + ")");
    }
    const auto architecture = j.at("architecture").get<std::string>();
    j.at("preset").get_to(card.preset);
    card.options = parseOptions(architecture, j.at("options"));
    j.at("labels").get_to(card.labels);
    const auto& p = j.at("preprocessing");
    const auto window = p.at("huWindow").get<std::vector<double>>();
    if (window.size() != 2) {
      throw ModelError("model card: huWindow must be [min, max]");
    }
    card.preprocessing.huMin = window[0];
    card.preprocessing.huMax = window[1];
    p.at("intensityOffset").get_to(card.preprocessing.intensityOffset);
    p.at("spacingPolicy").get_to(card.preprocessing.spacingPolicy);
    p.at("windowDepth").get_to(card.preprocessing.windowDepth);
    p.at("windowStride").get_to(card.preprocessing.windowStride);
    p.at("sliceContext").get_to(card.preprocessing.sliceContext);
    const auto& t = j.at("thresholds");
    t.at("liver").get_to(card.thresholds.liver);
    t.at("tumour").get_to(card.thresholds.tumour);
    const auto& v = j.at("provenance");
    card.provenance.densaVersion = v.value("densaVersion", "");
    card.provenance.gitSha = v.value("gitSha", "");
    card.provenance.createdUtc = v.value("createdUtc", "");
    card.provenance.libtorchVersion = v.value("libtorchVersion", "");
    card.provenance.trainingStage = v.value("trainingStage", "");
    card.provenance.trainingData = v.value("trainingData", "");
    card.provenance.notes = v.value("notes", "");
    return card;
  } catch (const json::exception& e) {
    throw ModelError(std::string("model card: ") + e.what());
  }
}

void writeCheckpointFile(const std::filesystem::path& path, const CheckpointContents& contents) {
  std::string header(kMagic.begin(), kMagic.end());
  putLe<std::uint32_t>(header, kCheckpointContainerVersion);
  putLe<std::uint32_t>(header, 0);
  putLe<std::uint64_t>(header, contents.card.size());
  putLe<std::uint64_t>(header, contents.weights.size());
  auto hash = fnv1a(kFnvOffset, contents.card.data(), contents.card.size());
  hash = fnv1a(hash, contents.weights.data(), contents.weights.size());
  putLe<std::uint64_t>(header, hash);

  std::random_device random;
  auto temp = path;
  temp += ".tmp-" + std::to_string(random());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(contents.card.data(), static_cast<std::streamsize>(contents.card.size()));
    out.write(contents.weights.data(), static_cast<std::streamsize>(contents.weights.size()));
    out.flush();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      throw ModelError("cannot write checkpoint '" + path.string() + "'");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw ModelError("cannot move checkpoint into place at '" + path.string() +
                     "': " + ec.message());
  }
}

CheckpointContents readCheckpointFile(const std::filesystem::path& path, bool withWeights) {
  const std::string name = "'" + path.string() + "'";
  std::error_code ec;
  const auto fileSize = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) {
    throw ModelError("cannot open checkpoint " + name);
  }
  std::array<char, kHeaderSize> header{};
  in.read(header.data(),
          static_cast<std::streamsize>(std::min<std::uintmax_t>(fileSize, kHeaderSize)));
  if (fileSize < kMagic.size() || std::memcmp(header.data(), kMagic.data(), kMagic.size()) != 0) {
    if (fileSize >= 4 && std::memcmp(header.data(), "PK\x03\x04", 4) == 0) {
      throw ModelError(name + " is not a Densa checkpoint: it looks like a PyTorch (torch.save) "
                              "file; import Python weights with importStateDict()");
    }
    throw ModelError(name + " is not a Densa checkpoint (bad magic)");
  }
  if (fileSize < kHeaderSize) {
    throw ModelError("checkpoint " + name + " is truncated (" + std::to_string(fileSize) +
                     " bytes, shorter than its header)");
  }
  const auto version = getLe<std::uint32_t>(header.data() + 16);
  if (version != kCheckpointContainerVersion) {
    throw ModelError("checkpoint " + name + " has container version " + std::to_string(version) +
                     "; this Densa reads version " + std::to_string(kCheckpointContainerVersion));
  }
  const auto cardSize = getLe<std::uint64_t>(header.data() + 24);
  const auto weightsSize = getLe<std::uint64_t>(header.data() + 32);
  const auto hash = getLe<std::uint64_t>(header.data() + 40);
  const std::uint64_t payload = fileSize - kHeaderSize;
  if (cardSize > payload || weightsSize > payload - cardSize) {
    throw ModelError("checkpoint " + name + " is truncated (" + std::to_string(fileSize) +
                     " bytes, expected " + std::to_string(kHeaderSize + cardSize + weightsSize) +
                     ")");
  }
  if (cardSize + weightsSize != payload) {
    throw ModelError("checkpoint " + name + " has " +
                     std::to_string(payload - cardSize - weightsSize) + " trailing bytes");
  }
  CheckpointContents contents;
  contents.card.resize(cardSize);
  in.read(contents.card.data(), static_cast<std::streamsize>(cardSize));
  if (withWeights) {
    contents.weights.resize(weightsSize);
    in.read(contents.weights.data(), static_cast<std::streamsize>(weightsSize));
  }
  if (!in) {
    throw ModelError("cannot read checkpoint " + name);
  }
  if (withWeights) {
    auto actual = fnv1a(kFnvOffset, contents.card.data(), contents.card.size());
    actual = fnv1a(actual, contents.weights.data(), contents.weights.size());
    if (actual != hash) {
      throw ModelError("checkpoint " + name + " is corrupted (checksum mismatch)");
    }
  }
  return contents;
}

ModelCard readModelCard(const std::filesystem::path& path) {
  const auto contents = readCheckpointFile(path, false);
  try {
    return parseModelCard(contents.card);
  } catch (const ModelError& e) {
    throw ModelError("checkpoint '" + path.string() + "': " + e.what());
  }
}

} // namespace densa::models
