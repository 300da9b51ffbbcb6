// Module's cached views of its tree: the parameter table follows structure
// changes.

#include "layers/module.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace normgraph {
namespace {

class Node : public Module {
 public:
  using Module::Module;
  Parameter* Param(std::string name) {
    return AddParameter(std::move(name),
                        *Tensor::Empty(CpuAllocator(), {2}, DType::kF32));
  }
  void Buffer(std::string name) {
    AddBuffer(std::move(name),
              *Tensor::Empty(CpuAllocator(), {2}, DType::kF32));
  }
  Node* Child(std::string name) {
    return AddChild(std::make_unique<Node>(std::move(name)));
  }
  Node* Adopt(std::unique_ptr<Node> child) {
    return AddChild(std::move(child));
  }
};

// The table, checked against ForEachParameter.
void ExpectTableMatchesTree(Module& m) {
  std::vector<std::pair<std::string, Parameter*>> visited;
  m.ForEachParameter([&](const std::string& name, Parameter& p) {
    visited.emplace_back(name, &p);
  });
  const Module::ParameterTable& table = m.Parameters();
  ASSERT_EQ(table.ordered.size(), visited.size());
  ASSERT_EQ(table.position.size(), visited.size());
  for (size_t i = 0; i < visited.size(); ++i) {
    EXPECT_EQ(table.ordered[i].first, visited[i].first);
    EXPECT_EQ(table.ordered[i].second, visited[i].second);
    auto it = table.position.find(visited[i].first);
    ASSERT_NE(it, table.position.end()) << visited[i].first;
    EXPECT_EQ(it->second, i);
  }
}

// Two slots of one dotted name would load and be checked as one (a loader
// finds the first, a lookup the last): a repeated name among a module's
// parameters, buffers and children stops the process, naming both.
TEST(ModuleDeathTest, RepeatedNamesAreRefused) {
  auto make = [] {
    auto root = std::make_unique<Node>("model");
    Node* layer = root->Child("layers");
    layer->Param("weight");
    layer->Buffer("gemma_weight");
    layer->Child("norm");
    return root;
  };
  EXPECT_DEATH(make()->Child("layers"),
               "module 'model' already has a child module named 'layers'");
  EXPECT_DEATH(make()->Child("layers")->Param("weight"),
               "already has a child module named 'layers'");
  {
    auto root = make();
    Node* layer = root->Child("other");
    layer->Param("weight");
    EXPECT_DEATH(layer->Param("weight"),
                 "module 'model.other' already has a parameter named 'weight'");
    EXPECT_DEATH(layer->Buffer("weight"), "a parameter named 'weight'");
    EXPECT_DEATH(layer->Child("weight"), "a parameter named 'weight'");
    layer->Buffer("gemma_weight");
    EXPECT_DEATH(layer->Param("gemma_weight"), "a buffer named 'gemma_weight'");
    // Names repeat freely across modules.
    layer->Child("norm")->Param("weight");
  }
}

TEST(ModuleTest, ParameterTableFollowsStructureChanges) {
  Node root("model");
  root.Param("a");
  Node* layer = root.Child("layer");
  layer->Param("w");
  layer->Buffer("derived");
  ExpectTableMatchesTree(root);
  EXPECT_EQ(root.Parameters().ordered[1].first, "model.layer.w");

  // New parameters, children and grandchildren after the table was built.
  layer->Param("v");
  ExpectTableMatchesTree(root);
  Node* inner = layer->Child("inner");
  inner->Param("u");
  root.Param("b");
  ExpectTableMatchesTree(root);
  EXPECT_EQ(root.Parameters().ordered.size(), 5u);
  EXPECT_EQ(root.Parameters().position.count("model.layer.inner.u"), 1u);
  // A subtree's own table names paths from the root too.
  ExpectTableMatchesTree(*layer);
  EXPECT_EQ(layer->Parameters().ordered[0].first, "model.layer.w");

  // Attaching a built subtree under a new parent renames its paths.
  auto orphan = std::make_unique<Node>("extra");
  orphan->Param("x");
  ExpectTableMatchesTree(*orphan);
  EXPECT_EQ(orphan->Parameters().ordered[0].first, "extra.x");
  Node* attached = root.Adopt(std::move(orphan));
  ExpectTableMatchesTree(root);
  ExpectTableMatchesTree(*attached);
  EXPECT_EQ(attached->Parameters().ordered[0].first, "model.extra.x");
  EXPECT_EQ(root.Parameters().position.count("model.extra.x"), 1u);
}

TEST(ModuleTest, FindModuleWalksDottedPaths) {
  Node root("model");
  Node* layers = root.Child("layers");
  Node* first = layers->Child("0");
  Node* norm = first->Child("input_layernorm");
  layers->Child("1");
  EXPECT_EQ(root.FindModule(""), &root);
  EXPECT_EQ(root.FindModule("layers"), layers);
  EXPECT_EQ(root.FindModule("layers.0"), first);
  EXPECT_EQ(root.FindModule("layers.0.input_layernorm"), norm);
  EXPECT_EQ(layers->FindModule("0.input_layernorm"), norm);
  EXPECT_EQ(root.FindModule("layers.2"), nullptr);
  EXPECT_EQ(root.FindModule("layers.0.input_layernorm.weight"), nullptr);
  EXPECT_EQ(root.FindModule("layers."), nullptr);
  EXPECT_EQ(root.FindModule("model"), nullptr);  // paths start below it
}

}  // namespace
}  // namespace normgraph
